"""Why were two records linked?  Per-field match weights from the saved Splink model.

The persons stage saves its trained model in ``linkage_models(run_id, created_at, settings_json,
summary_json)`` (``settings_json`` = ``linker.misc.save_model_to_json()``).  This module re-creates a Splink
Linker from the latest model and scores any record pairs with it, giving Splink's waterfall data: for each
comparison the level reached, its Bayes factor and log2 weight, and the two values compared.

The Linker runs on a private in-memory DuckDB connection holding only the records being explained, plus
term-frequency tables computed by SQL over the *whole* input table on ``store.con`` -- so the weights are
the same as in the full run, and Splink's scratch tables never land in the project store (which may be
open read-only, or inside a stage transaction).

``summary_json`` may name the model's input table as ``{"input_table": "..."}`` (default ``person_std``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ecins_link.matching.explain_rows import (
    DEFAULT_INPUT_TABLE,
    pairs_name_their_rule,
    with_link_rule,
    with_source_prior,
)
from ecins_link.store import Store, StoreError

_tf_cache: dict[tuple, dict[str, Any]] = {}


def _sql_str(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def latest_model(store: Store) -> tuple[dict, str]:
    """The latest saved Splink settings dict and the name of the table it runs over."""
    if not store.has_table("linkage_models"):
        raise StoreError("no linkage model saved (table linkage_models missing); run the persons stage first")
    row = store.con.execute(
        "SELECT settings_json, summary_json, created_at FROM linkage_models ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise StoreError("linkage_models is empty; run the persons stage first")
    settings = json.loads(row[0]) if isinstance(row[0], str) else dict(row[0])
    summary = json.loads(row[1]) if isinstance(row[1], str) and row[1] else {}
    if not settings.get("comparisons"):
        raise StoreError("the latest linkage model is untrained (too few records); nothing to explain")
    input_table = (summary or {}).get("input_table") or DEFAULT_INPUT_TABLE
    store.require(input_table, stage="explain")
    settings["__saved_at"] = str(row[2])
    settings["__summary"] = summary or {}
    return settings, input_table


def _prepared_settings(settings: dict) -> dict:
    out = json.loads(json.dumps(settings))
    out["link_type"] = "dedupe_only"  # unique_id is globally unique; scores do not depend on link type
    out["retain_matching_columns"] = True
    out["retain_intermediate_calculation_columns"] = True
    out.pop("linker_uid", None)
    out.pop("__saved_at", None)
    out.pop("__summary", None)
    return out


class _Scorer:
    """A Splink Linker over a handful of records on a scratch connection (close() when done)."""

    def __init__(self, store: Store, pairs: pd.DataFrame) -> None:
        from splink import DuckDBAPI, Linker

        settings, input_table = latest_model(store)
        self.summary: dict = settings["__summary"]  # the model's run summary, read with the settings
        self.settings = _prepared_settings(settings)
        self.mem = duckdb.connect()
        store.con.register("__explain_pairs", pairs[["unique_id_l", "unique_id_r"]])
        try:
            records = store.con.execute(
                f"""SELECT * FROM "{input_table}" WHERE unique_id IN (
                        SELECT unique_id_l FROM __explain_pairs UNION SELECT unique_id_r FROM __explain_pairs)"""
            ).to_arrow_table()
        finally:
            store.con.unregister("__explain_pairs")
        found = set(records.column("unique_id").to_pylist())
        wanted = set(pairs["unique_id_l"]) | set(pairs["unique_id_r"])
        if missing := wanted - found:
            self.mem.close()
            raise KeyError(f"{len(missing)} record id(s) not in {input_table}: {sorted(missing)[:5]}")
        if "address_surnames" not in records.column_names:  # standardised before the household link existed
            records = records.append_column("address_surnames", pa.nulls(records.num_rows, pa.string()))
        if "surname_forename_canonical" not in records.column_names:  # ... or before swapped-name variants
            records = records.append_column("surname_forename_canonical", records.column("surname"))
        try:
            self.mem.register("__records", records)
            self.linker = Linker("__records", self.settings, DuckDBAPI(self.mem), set_up_basic_logging=False)
            settings_obj = self.linker._settings_obj
            tf_tables = _tf_tables(store, input_table, settings_obj, settings["__saved_at"])
            for col, tf in tf_tables.items():
                self.linker.table_management.register_term_frequency_lookup(tf, col, overwrite=True)
        except BaseException:
            self.mem.close()
            raise

    def score(self, pairs: pd.DataFrame) -> Any:
        """Score the pairs (each ordered lower id first); returns a SplinkDataFrame."""
        from splink.internals.accuracy import predictions_from_sample_of_pairwise_labels_sql
        from splink.internals.pipeline import CTEPipeline
        from splink.internals.vertically_concatenate import compute_df_concat_with_tf

        labels = pairs[["unique_id_l", "unique_id_r"]].assign(clerical_match_score=0.0)
        labels_sdf = self.linker.table_management.register_labels_table(labels, overwrite=True)
        pipeline = CTEPipeline()
        nodes_with_tf = compute_df_concat_with_tf(self.linker, pipeline)
        pipeline = CTEPipeline([nodes_with_tf])
        pipeline.enqueue_list_of_sqls(
            predictions_from_sample_of_pairwise_labels_sql(self.linker, labels_sdf.physical_name)
        )
        return self.linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)

    def close(self) -> None:
        self.mem.close()


def _tf_tables(store: Store, input_table: str, settings_obj: Any, model_saved_at: str) -> dict[str, Any]:
    """Term-frequency lookups over the whole input table (cached while the table and model are unchanged)."""
    from splink.internals.term_frequencies import term_frequencies_for_single_column_sql

    cols = settings_obj._term_frequency_columns
    if not cols:
        return {}
    key = (
        str(store.path),
        id(store.con),
        input_table,
        model_saved_at,
        store.count(input_table),
        tuple(c.unquote().name for c in cols),
    )
    if key not in _tf_cache:
        _tf_cache.clear()
        _tf_cache[key] = {
            c.unquote().name: store.con.execute(
                term_frequencies_for_single_column_sql(c, f'"{input_table}"')
            ).df()
            for c in cols
        }
    return _tf_cache[key]


def _ordered(pairs: pd.DataFrame) -> pd.DataFrame:
    lo = pairs[["unique_id_l", "unique_id_r"]].min(axis=1)
    hi = pairs[["unique_id_l", "unique_id_r"]].max(axis=1)
    return pd.DataFrame({"unique_id_l": lo, "unique_id_r": hi}).drop_duplicates().reset_index(drop=True)


def comparison_names(store: Store) -> list[str]:
    """Output names of the saved model's comparisons, in order (e.g. ``['forename', 'surname', 'dob']``)."""
    settings, _ = latest_model(store)
    return [c.get("output_column_name") or f"comparison_{i}" for i, c in enumerate(settings["comparisons"])]


def score_pairs(store: Store, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per-field breakdown for many pairs at once (set-based; used by the review export and the panel pack).

    ``pairs`` has ``unique_id_l, unique_id_r``.  Returns one row per distinct unordered pair, lower id
    first: ``unique_id_l, unique_id_r, match_weight, match_probability``, for each comparison ``c`` the
    columns ``c__level`` (label of the level reached) and ``c__weight`` (log2 Bayes factor including any
    term-frequency adjustment), and ``breakdown``: one text line ``c: level (+w.w); ...``.
    """
    cols = ["unique_id_l", "unique_id_r", "match_weight", "match_probability", "breakdown"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    ordered = _ordered(pairs)
    scorer = _Scorer(store, ordered)
    try:
        predicted = scorer.score(ordered)
        table = predicted.physical_name
        present = {c.unquote().name for c in predicted.columns}
        selects, parts = [], []
        for comp in scorer.linker._settings_obj.comparisons:
            name = comp.output_column_name
            gamma = comp._gamma_column_name
            cases = " ".join(
                f"WHEN {lvl.comparison_vector_value} THEN {_sql_str(lvl.label_for_charts)}"
                for lvl in comp.comparison_levels
            )
            tf_col = comp._bf_tf_adj_column_name.strip('"')
            tf = f' * coalesce("{tf_col}", 1.0)' if tf_col in present else ""
            weight = f'log2(greatest("{comp._bf_column_name}"{tf}, 1e-300))'
            selects.append(f'CASE "{gamma}" {cases} END AS "{name}__level", {weight} AS "{name}__weight"')
            parts.append(
                f"""{_sql_str(name + ": ")} || (CASE "{gamma}" {cases} END) || ' (' ||
                    printf('%+.1f', {weight}) || ')'"""
            )
        out = scorer.mem.execute(
            f"""SELECT unique_id_l, unique_id_r, match_weight, match_probability, {", ".join(selects)},
                       concat_ws('; ', {", ".join(parts)}) AS breakdown
                FROM {table} ORDER BY unique_id_l, unique_id_r"""
        ).df()
    finally:
        scorer.close()
    return out


def _waterfall_records(store: Store, unique_id_l: str, unique_id_r: str) -> tuple[list[dict], Any, bool, dict]:
    """The scored pair as Splink records, the linker, whether the pair was turned round, and the model summary."""
    ordered = _ordered(pd.DataFrame({"unique_id_l": [unique_id_l], "unique_id_r": [unique_id_r]}))
    scorer = _Scorer(store, ordered)
    try:
        records = scorer.score(ordered).as_record_dict()
    finally:
        scorer.close()
    # show a missing value as blank, not the text 'None'
    records = [
        {k: ("" if v is None and k.endswith(("_l", "_r")) else v) for k, v in rec.items()} for rec in records
    ]
    return records, scorer.linker, ordered.iloc[0, 0] != unique_id_l, scorer.summary


def explain_pair(store: Store, unique_id_l: str, unique_id_r: str) -> pd.DataFrame:
    """Splink's waterfall for two records: one row per model term, prior first, final score last.

    Columns: ``comparison`` (comparison name, ``tf_<name>`` for a term-frequency adjustment, ``Prior``,
    ``Source prior`` (bits a source's own prior took off), ``Link rule`` (the pass that accepted the pair at the
    match threshold although the model scored it lower; ``level`` names it), ``Final score``), ``level`` (label of
    the level reached), ``bayes_factor``, ``log2_weight``,
    ``value_l`` / ``value_r`` (the compared values of ``unique_id_l`` / ``unique_id_r``),
    ``m_probability``, ``u_probability``, ``description``.  Raises ``KeyError`` for an unknown record id and
    ``StoreError`` when no model has been saved.
    """
    from splink.internals.waterfall_chart import records_to_waterfall_data

    records, linker, swapped, summary = _waterfall_records(store, unique_id_l, unique_id_r)
    data = pd.DataFrame(records_to_waterfall_data(records, linker._settings_obj, hide_details=False))
    # Splink lists every column a comparison reads ("L, LACHLAN, RYAN, ..."); when the comparison is named
    # after a column, show just that column's two values
    rec = records[0]
    for side in ("l", "r"):
        named = data["column_name"].map(lambda c, side=side: rec.get(f"{c}_{side}"))
        has_col = data["column_name"].map(lambda c, side=side: f"{c}_{side}" in rec)
        data.loc[has_col, f"value_{side}"] = named[has_col].map(lambda v: "" if v is None else str(v))
    if swapped:
        data[["value_l", "value_r"]] = data[["value_r", "value_l"]].to_numpy()
    out = data.rename(
        columns={
            "column_name": "comparison",
            "label_for_charts": "level",
            "log2_bayes_factor": "log2_weight",
            "bayes_factor_description": "description",
        }
    )
    out["log2_weight"] = out["log2_weight"].astype(float)
    out = out[~((out["comparison"].str.startswith("tf_")) & (out["log2_weight"] == 0.0))]
    out = with_source_prior(store, out, unique_id_l, unique_id_r, summary)
    out = with_link_rule(store, out, unique_id_l, unique_id_r)
    keep = [
        "comparison",
        "level",
        "bayes_factor",
        "log2_weight",
        "value_l",
        "value_r",
        "m_probability",
        "u_probability",
        "description",
    ]
    return out[keep].reset_index(drop=True)


def waterfall_chart(
    store: Store, unique_id_l: str, unique_id_r: str, remove_sensitive_data: bool = False
) -> Any:
    """Splink's waterfall chart (an altair chart, embeddable in HTML) for two records."""
    records, linker, _, _ = _waterfall_records(store, unique_id_l, unique_id_r)
    return linker.visualisations.waterfall_chart(
        records, filter_nulls=True, remove_sensitive_data=remove_sensitive_data
    )


_JS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def chart_spec_json(chart: Any) -> str:
    """An altair chart's Vega-Lite spec as JSON that is safe inside an HTML ``<script>`` element.

    ``chart.to_html()`` does *not* escape the data, so a name such as ``</script><script>...`` in a record
    would break out of the script; here ``< > &`` (and U+2028/2029) are written as JSON ``\\uXXXX`` escapes, so
    the chart shows the value exactly while the HTML stays inert.
    """
    text = json.dumps(chart.to_dict(), ensure_ascii=False, sort_keys=True, default=str)
    for raw, escaped in _JS_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def waterfall_html(
    store: Store, unique_id_l: str, unique_id_r: str, element_id: str, remove_sensitive_data: bool = False
) -> str:
    """An HTML fragment drawing the pair's waterfall with ``vegaEmbed`` (the page must load vega,
    vega-lite and vega-embed); the data is escaped as in :func:`chart_spec_json`."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", element_id):
        raise ValueError("element_id must be letters, digits, '_' or '-' (starting with a letter)")
    spec = chart_spec_json(waterfall_chart(store, unique_id_l, unique_id_r, remove_sensitive_data))
    return (
        f'<div id="{element_id}"></div>\n'
        f'<script>vegaEmbed("#{element_id}", {spec}, {{"actions": false}});</script>'
    )


def explain_person(store: Store, person_id: str) -> pd.DataFrame:
    """The records of one person and, for each, the strongest edge that linked it.

    Columns: ``unique_id, source, record_key, cluster_confidence``; ``linked_to`` (the other record of the
    same person on that edge; NULL when there is none); ``match_weight, match_probability`` (the model's
    score of that edge); ``link_basis``: ``model`` (strongest ``person_pairs`` edge inside the person),
    ``clerical`` (no model edge, but a reviewer's latest decision says match), ``single record`` or
    ``no stored edge``; ``breakdown`` (per-field summary of the edge, as in :func:`score_pairs`); ``link_rule``
    (the pass that accepted that edge at the match threshold although the model scored it lower, else NULL:
    ``matching.person_passes.RULE_TEXT`` says what each means).
    """
    from ecins_link.matching.review import latest_decisions_sql

    store.require("person_clusters", stage="explain_person")
    cols = [
        "unique_id",
        "source",
        "record_key",
        "cluster_confidence",
        "linked_to",
        "match_weight",
        "match_probability",
        "link_basis",
        "breakdown",
        "link_rule",
    ]
    recs = store.df(
        """SELECT unique_id, source, record_key, cluster_confidence FROM person_clusters
           WHERE person_id = ? ORDER BY unique_id""",
        [person_id],
    )
    if recs.empty:
        raise KeyError(f"no person {person_id!r} in person_clusters")
    if len(recs) == 1:
        return recs.assign(
            linked_to=None,
            match_weight=float("nan"),
            match_probability=float("nan"),
            link_basis="single record",
            breakdown=None,
            link_rule=None,
        )[cols]
    sources = []
    if store.has_table("person_pairs"):
        rule = "link_rule" if pairs_name_their_rule(store) else "NULL::VARCHAR"
        sources.append(
            "SELECT unique_id_l AS a, unique_id_r AS b, 1 AS pref, match_weight, match_probability, "
            f"{rule} AS link_rule FROM person_pairs"
        )
    if store.has_table("clerical_decisions"):
        sources.append(
            f"SELECT unique_id_l, unique_id_r, 2, NULL, NULL, NULL FROM ({latest_decisions_sql()}) "
            "WHERE decision = 'match'"
        )
    edges = pd.DataFrame(columns=["unique_id", "linked_to", "pref", "match_weight", "match_probability", "link_rule"])
    if sources:
        edges = store.df(
            f"""WITH members AS (SELECT unique_id FROM person_clusters WHERE person_id = ?),
                    e AS (SELECT * FROM ({" UNION ALL ".join(sources)})
                          WHERE a IN (SELECT unique_id FROM members) AND b IN (SELECT unique_id FROM members)),
                    both_ways AS (SELECT a AS unique_id, b AS linked_to, pref, match_weight, match_probability,
                                         link_rule FROM e
                                  UNION ALL SELECT b, a, pref, match_weight, match_probability, link_rule FROM e)
                SELECT unique_id, linked_to, pref, match_weight, match_probability, link_rule FROM both_ways
                QUALIFY row_number() OVER (
                    PARTITION BY unique_id ORDER BY pref, match_weight DESC NULLS LAST, linked_to) = 1""",
            [person_id],
        )
    out = recs.merge(edges, on="unique_id", how="left")
    out["link_basis"] = out["pref"].map({1: "model", 2: "clerical"}).fillna("no stored edge")
    linked = out[out["linked_to"].notna()]
    try:
        scored = score_pairs(
            store, linked.rename(columns={"unique_id": "unique_id_l", "linked_to": "unique_id_r"})
        )
    except StoreError:  # no saved model: stored scores only, no per-field breakdown
        scored = pd.DataFrame(
            columns=["unique_id_l", "unique_id_r", "match_weight", "match_probability", "breakdown"]
        )
    out["a"] = out[["unique_id", "linked_to"]].min(axis=1)
    out["b"] = out[["unique_id", "linked_to"]].max(axis=1)
    scored = scored.rename(
        columns={"unique_id_l": "a", "unique_id_r": "b", "match_weight": "mw", "match_probability": "mp"}
    )[["a", "b", "mw", "mp", "breakdown"]]
    out = out.merge(scored, on=["a", "b"], how="left")
    out["match_weight"] = out["match_weight"].astype(float).fillna(out["mw"].astype(float))
    out["match_probability"] = out["match_probability"].astype(float).fillna(out["mp"].astype(float))
    return out[cols]
