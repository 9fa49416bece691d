"""The second look at a first clustering: the re-weighting passes, then clustering again if any pair moved.

Both engines run it on the stage's private DuckDB connection once the scored pairs and a first clustering are
there (the DuckDB path after its own clustering, the Spark path after reading Spark's pairs and clusters back):

0. a source's own duplicate rate as the prior of a pair of its records (``person_source_priors``: weighs
   within-source pairs down, never up), then a source's own person reference shared by two of its records
   (``person_source_ids``);
1. an undated record at its family's old address (``person_moves``);
2. a misspelt forename or the only namesake at home (``person_home``);
3. exact forename, surname and date of birth at another address (``person_identity``);
4. the same identity under name variants (MUHAMMAD / MOHAMMED, CLARK / CLARKE) at another address
   (``person_variants``);
5. the same identity with one name mistyped by one keystroke (GEOGRE / GEORGE) at another address
   (``person_keystrokes``).

Each pass reads the first clustering and re-weights pairs of the pair table; when any pass re-weighted a pair,
the records are clustered again with the same clerical constraints and over-merge guard.  A step that changes a
pair's score, or raises it to the match threshold, appends its name to the pair's ``link_rule`` (kept in
``person_pairs``; :data:`RULE_TEXT` says what each means), so an explanation shows why the pair's score is not the
model's.  The source-prior step is not listed there: its bits per source are in the run summary, and an
explanation reads them from it.
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_home import same_home_evidence
from ecins_link.matching.person_identity import same_identity_elsewhere
from ecins_link.matching.person_keystrokes import one_keystroke_elsewhere
from ecins_link.matching.person_moves import household_moves
from ecins_link.matching.person_source_ids import same_source_person_id
from ecins_link.matching.person_source_priors import within_source_priors
from ecins_link.matching.person_variants import same_identity_variants

# what a pair's ``link_rule`` means (steps after the first clustering, in the order they ran, comma-separated):
# shown in explanations (explain_pair, explain_person, a panel's "why linked")
RULE_TEXT = {
    "same_source_person_id": "the same person reference in one source's records, with no contradicting date of "
                             "birth (person_source_ids)",
    "household_moves": "an undated record at an address its family moved from, weighed as if the addresses agreed "
                       "(person_moves)",
    "same_home_typo": "a rare spelling of the forename at one home, weighed as one keying error (person_home)",
    "same_home_twins": "two forenames of one date of birth and surname, each recorded more than once at one home: "
                       "twins, weighed apart (person_home)",
    "household_link_chance": "a changed surname linked through a household, weighed no higher than the chance of "
                             "that link (person_home_chance)",
    "same_home": "an undated record whose name fits exactly one person at its home (person_home)",
    "same_identity": "the same forename, surname and full date of birth at another address (person_identity)",
    "same_identity_variants": "the same identity with the names written as variants or in the other order, "
                              "at another address (person_variants)",
    "same_identity_keystroke": "the same identity with one name mistyped by one keystroke, at another address "
                               "(person_keystrokes)",
}
# the steps that accept a pair at the match threshold (the others add or take off weight)
ACCEPTING = frozenset({"same_source_person_id", "same_home", "same_identity", "same_identity_variants",
                       "same_identity_keystroke"})

PASSES = ("source_priors", "same_source_person_id", "household_moves", "same_home", "same_identity",
          "same_identity_variants", "same_identity_keystroke")


def second_look(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str, *, threshold: float,
                review_low: float, settings: dict, mc: dict, must: list, cannot: list,
                guard: dict) -> tuple[dict, list[dict] | None]:
    """Run the passes over ``pairs`` and the first clustering ``clusters`` (tables on ``con``; ``nodes``
    holds the person records) and cluster again when any pass re-weighted a pair.  Returns what each pass did
    (keyed by :data:`PASSES`, for the run summary) and the new splits, or ``None`` when nothing moved and
    the first clustering stands."""
    # the model's own score, kept beside the one the steps leave (an incremental run starts its carried pairs from
    # it, so no step is applied twice), and the steps that changed it (see RULE_TEXT)
    for col, kind in (("model_weight", "DOUBLE"), ("model_probability", "DOUBLE"), ("link_rule", "VARCHAR")):
        con.execute(f'ALTER TABLE "{pairs}" ADD COLUMN IF NOT EXISTS {col} {kind}')
    con.execute(f'UPDATE "{pairs}" SET model_weight = match_weight, model_probability = match_probability, '
                'link_rule = NULL')
    priors = within_source_priors(con, nodes, pairs, threshold, mc, clusters)
    held = priors.get("passes_hold_off", [])
    done = {
        "source_priors": priors,
        "same_source_person_id": same_source_person_id(con, nodes, pairs, threshold, mc),
        "household_moves": household_moves(con, nodes, pairs, clusters, threshold, settings, mc),
        "same_home": same_home_evidence(con, nodes, pairs, clusters, threshold, review_low, settings, mc),
        "same_identity": same_identity_elsewhere(con, nodes, pairs, clusters, threshold, mc, held),
        "same_identity_variants": same_identity_variants(con, nodes, pairs, clusters, threshold, mc, held),
        "same_identity_keystroke": one_keystroke_elsewhere(con, nodes, pairs, clusters, threshold, mc, held),
    }
    if not any(done[name].get("reweighted") for name in PASSES):
        return done, None
    return done, cluster(con, nodes, pairs, threshold, must, cannot, guard, clusters)
