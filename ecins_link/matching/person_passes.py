"""The second look at a first clustering: the re-weighting passes, then clustering again if any pair moved.

Both engines run it on the stage's private DuckDB connection once the scored pairs and a first clustering are
there (the DuckDB path after its own clustering, the Spark path after reading Spark's pairs and clusters back):

0. a source's own duplicate rate as the prior of a pair of its records (``person_source_priors``: weighs
   within-source pairs down, never up);
1. an undated record at its family's old address (``person_moves``);
2. a misspelt forename or the only namesake at home (``person_home``);
3. exact forename, surname and date of birth at another address (``person_identity``);
4. the same identity under name variants (MUHAMMAD / MOHAMMED, CLARK / CLARKE) at another address
   (``person_variants``);
5. the same identity with one name mistyped by one keystroke (GEOGRE / GEORGE) at another address
   (``person_keystrokes``).

Each pass reads the first clustering and re-weights pairs of the pair table; when any pass re-weighted a pair,
the records are clustered again with the same clerical constraints and over-merge guard.
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_home import same_home_evidence
from ecins_link.matching.person_identity import same_identity_elsewhere
from ecins_link.matching.person_keystrokes import one_keystroke_elsewhere
from ecins_link.matching.person_moves import household_moves
from ecins_link.matching.person_source_priors import within_source_priors
from ecins_link.matching.person_variants import same_identity_variants

PASSES = ("source_priors", "household_moves", "same_home", "same_identity", "same_identity_variants",
          "same_identity_keystroke")


def second_look(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str, *, threshold: float,
                review_low: float, settings: dict, mc: dict, must: list, cannot: list,
                guard: dict) -> tuple[dict, list[dict] | None]:
    """Run the passes over ``pairs`` and the first clustering ``clusters`` (tables on ``con``; ``nodes``
    holds the person records) and cluster again when any pass re-weighted a pair.  Returns what each pass did
    (keyed by :data:`PASSES`, for the run summary) and the new splits, or ``None`` when nothing moved and
    the first clustering stands."""
    priors = within_source_priors(con, nodes, pairs, threshold, mc)
    held = priors.get("passes_hold_off", [])
    done = {
        "source_priors": priors,
        "household_moves": household_moves(con, nodes, pairs, clusters, threshold, settings, mc),
        "same_home": same_home_evidence(con, nodes, pairs, clusters, threshold, review_low, settings, mc),
        "same_identity": same_identity_elsewhere(con, nodes, pairs, clusters, threshold, mc, held),
        "same_identity_variants": same_identity_variants(con, nodes, pairs, clusters, threshold, mc, held),
        "same_identity_keystroke": one_keystroke_elsewhere(con, nodes, pairs, clusters, threshold, mc, held),
    }
    if not any(done[name].get("reweighted") for name in PASSES):
        return done, None
    return done, cluster(con, nodes, pairs, threshold, must, cannot, guard, clusters)
