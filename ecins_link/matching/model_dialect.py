"""One person model for both engines: render a Splink settings dict written in DuckDB SQL for Spark.

The model is stored once (``linkage_models.settings_json``) in its canonical dialect, DuckDB, as Splink
settings plus trained parameters.  :func:`render_settings` renders it for Spark SQL so a model trained on
either engine can be applied on the other; :func:`with_parameters` puts parameters trained on Spark back onto
the canonical (DuckDB) definition.

Rendering is not a blind ``sqlglot.transpile``: DuckDB and Spark give different answers, with no error, for
several constructs that transpile cleanly (regex back-references, ``regexp_replace`` without the ``'g'`` flag
replacing only the first match on DuckDB, 1-based against 0-based lambda indices, ordered list aggregates).
Each level's SQL is parsed and every function in it must be on :data:`PORTABLE` (same answer on both
engines) or have a rule below that renders it with the same meaning; anything else stops with a
:class:`ModelDialectError` naming the comparison, the level and the function, before any pair is scored.

One known difference remains and is measured rather than hidden: Splink's Spark ``jaro_winkler`` counts half
transpositions where DuckDB's ``jaro_winkler_similarity`` rounds them down (BERT / ROBERT: 0.764 on Spark,
0.806 on DuckDB), so a pair whose similarity lies between the two values on either side of a level's
threshold falls into a different level (``tests/test_spark_parity.py`` counts them; docs/spark.md).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import sqlglot
from sqlglot import exp

CANONICAL = "duckdb"

# sqlglot expression types whose meaning is the same in DuckDB and Spark SQL for the argument types a person
# model uses (strings, integers, dates, booleans).
PORTABLE: tuple[type[exp.Expression], ...] = (
    exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In,
    exp.Between, exp.Null, exp.Boolean, exp.Literal, exp.Column, exp.Identifier, exp.Add, exp.Sub, exp.Mul,
    exp.Neg, exp.Abs, exp.Cast, exp.DataType, exp.Coalesce, exp.Length, exp.Left, exp.Right, exp.Year,
    exp.Month, exp.Day, exp.SplitPart, exp.Contains, exp.Lower, exp.Upper, exp.Trim, exp.Concat, exp.DPipe,
    exp.Case, exp.If, exp.Greatest, exp.Least, exp.Lambda, exp.Var, exp.Star, exp.Bracket,
)
# DuckDB strftime codes with a Spark date_format equivalent
_DATE_CODES = {"%Y": "yyyy", "%m": "MM", "%d": "dd"}
_UDFS = {"damerau_levenshtein", "jaro_winkler_similarity", "jaro_similarity", "levenshtein"}


class ModelDialectError(ValueError):
    """A model's SQL uses something that would not mean the same on the target engine."""


def _literal(node: exp.Expression | None, what: str) -> str:
    if not isinstance(node, exp.Literal) or not node.is_string:
        raise ModelDialectError(f"{what} must be a string literal, got {node.sql(CANONICAL) if node else None!r}")
    return node.this


def _regex(pattern: str, where: str) -> str:
    if re.search(r"\\[1-9]|\(\?[=!<]", pattern):
        raise ModelDialectError(f"{where}: regex {pattern!r} uses back-references or look-around (RE2 on DuckDB, "
                                "java.util.regex on Spark treat them differently)")
    return pattern


def _split_regex(delimiter: str) -> str:
    """Spark's ``split`` takes a Java regex where DuckDB's ``string_split`` takes a literal."""
    return delimiter if re.fullmatch(r"[A-Za-z0-9 ,;:@_-]*", delimiter) else "\\Q" + delimiter + "\\E"


def _render_node(node: exp.Expression, where: str) -> exp.Expression:
    """One node rendered for Spark; raises on anything without a rule."""
    if isinstance(node, exp.JarowinklerSimilarity):
        return exp.Anonymous(this="jaro_winkler", expressions=[node.this, node.expression])
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name not in _UDFS:
            raise ModelDialectError(f"{where}: function {name}() has no checked Spark rendering")
        return exp.Anonymous(this={"jaro_winkler_similarity": "jaro_winkler", "jaro_similarity": "jaro_sim"}
                             .get(name, name), expressions=node.expressions)
    if isinstance(node, exp.RegexpReplace):
        mods = node.args.get("modifiers")
        if mods is None or "g" not in _literal(mods, f"{where}: regexp_replace flags"):
            raise ModelDialectError(f"{where}: regexp_replace without the 'g' flag replaces the first match on "
                                    "DuckDB but every match on Spark")
        replacement = _literal(node.args.get("replacement"), f"{where}: regexp_replace replacement")
        if "\\" in replacement or "$" in replacement:
            raise ModelDialectError(f"{where}: regexp_replace replacement {replacement!r} uses group references")
        _regex(_literal(node.expression, f"{where}: regexp_replace pattern"), where)
        return exp.Anonymous(this="regexp_replace", expressions=[node.this, node.expression,
                                                                   exp.Literal.string(replacement)])
    if isinstance(node, exp.RegexpLike):  # DuckDB regexp_matches: a partial match, like Spark's RLIKE
        if node.args.get("flag") is not None:
            raise ModelDialectError(f"{where}: regexp_matches options have no checked Spark rendering")
        _regex(_literal(node.expression, f"{where}: regexp_matches pattern"), where)
        return exp.RegexpLike(this=node.this, expression=node.expression)
    if isinstance(node, exp.Split):
        delim = _literal(node.expression, f"{where}: string_split delimiter")
        return exp.Anonymous(this="split", expressions=[node.this, exp.Literal.string(_split_regex(delim))])
    if isinstance(node, exp.ArrayFilter):
        lam = node.expression
        if not isinstance(lam, exp.Lambda) or len(lam.expressions) != 1:
            raise ModelDialectError(f"{where}: list_filter with an index argument (1-based on DuckDB, 0-based "
                                    "on Spark)")
        return exp.Anonymous(this="filter", expressions=[node.this, lam])
    if isinstance(node, exp.ArrayOverlaps):
        return exp.Anonymous(this="arrays_overlap", expressions=[node.this, node.expression])
    if isinstance(node, exp.TimeToStr):
        fmt = _literal(node.args.get("format"), f"{where}: strftime format")
        spark_fmt = fmt
        for code, java in _DATE_CODES.items():
            spark_fmt = spark_fmt.replace(code, java)
        if "%" in spark_fmt or re.search(r"[A-Za-z]", re.sub(r"yyyy|MM|dd", "", spark_fmt)):
            raise ModelDialectError(f"{where}: strftime format {fmt!r} has no checked Spark rendering")
        return exp.Anonymous(this="date_format", expressions=[node.this, exp.Literal.string(spark_fmt)])
    if isinstance(node, PORTABLE):
        return node
    raise ModelDialectError(f"{where}: {node.key}() ({node.sql(CANONICAL)[:60]}) has no checked Spark rendering")


def render_condition(sql: str, where: str = "condition", dialect: str = "spark") -> str:
    """A DuckDB SQL condition (a comparison level or blocking rule) rendered for ``dialect``."""
    if dialect == CANONICAL:
        return sql
    if dialect != "spark":
        raise ModelDialectError(f"no rendering of the person model for {dialect!r}")
    if sql.strip().upper() == "ELSE":
        return "ELSE"
    try:
        tree = sqlglot.parse_one(sql, read=CANONICAL)
    except sqlglot.errors.ParseError as err:
        raise ModelDialectError(f"{where}: cannot parse {sql!r}: {err}") from None
    for node in tree.walk():  # check every node before rendering any
        if not isinstance(node, PORTABLE) and not isinstance(node, (
                exp.JarowinklerSimilarity, exp.Anonymous, exp.RegexpReplace, exp.RegexpLike, exp.Split,
                exp.ArrayFilter, exp.ArrayOverlaps, exp.TimeToStr)):
            raise ModelDialectError(f"{where}: {node.key} ({node.sql(CANONICAL)[:60]}) has no checked Spark "
                                    "rendering")
    return _rebuild(tree, where).sql(dialect="spark")


def _rebuild(node: exp.Expression, where: str) -> exp.Expression:
    """Render ``node``'s children first, then ``node`` itself (a rule replaces a node with a new one, whose
    arguments must already be rendered)."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _rebuild(value, where))
        elif isinstance(value, list):
            node.set(key, [_rebuild(v, where) if isinstance(v, exp.Expression) else v for v in value])
    return _render_node(node, where)


def render_settings(settings: dict[str, Any], dialect: str = "spark") -> dict[str, Any]:
    """A copy of a canonical (DuckDB) Splink settings dict with every level and blocking rule rendered for
    ``dialect``, parameters (m, u, prior) unchanged."""
    given = settings.get("sql_dialect", CANONICAL)
    if given not in (CANONICAL, None):
        raise ModelDialectError(f"settings are in {given!r}; the stored model must be canonical ({CANONICAL})")
    out = copy.deepcopy(settings)
    out["sql_dialect"] = dialect
    out.pop("linker_uid", None)
    for comp in out.get("comparisons", []):
        for i, level in enumerate(comp["comparison_levels"]):
            where = f"comparison {comp.get('output_column_name')!r} level {level.get('label_for_charts') or i}"
            level["sql_condition"] = render_condition(level["sql_condition"], where, dialect)
    rules = []
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        text = rule["blocking_rule"] if isinstance(rule, dict) else rule
        rendered = render_condition(text, f"blocking rule {text!r}", dialect)
        rules.append({**rule, "blocking_rule": rendered, "sql_dialect": dialect} if isinstance(rule, dict)
                     else rendered)
    out["blocking_rules_to_generate_predictions"] = rules
    return out


_PARAMS = ("m_probability", "u_probability", "tf_minimum_u_value")


def with_parameters(canonical: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """The canonical settings with the parameters (prior, each level's m and u) of ``trained`` -- the same
    model rendered for another engine and trained there.  Levels are matched by comparison and position."""
    out = copy.deepcopy(canonical)
    out["sql_dialect"] = CANONICAL
    out["probability_two_random_records_match"] = trained["probability_two_random_records_match"]
    mine, theirs = out["comparisons"], trained["comparisons"]
    if [c["output_column_name"] for c in mine] != [c["output_column_name"] for c in theirs]:
        raise ModelDialectError("trained model's comparisons differ from the canonical definition")
    for cm, ct in zip(mine, theirs, strict=True):
        if len(cm["comparison_levels"]) != len(ct["comparison_levels"]):
            raise ModelDialectError(f"comparison {cm['output_column_name']!r}: level counts differ")
        for lm, lt in zip(cm["comparison_levels"], ct["comparison_levels"], strict=True):
            for key in _PARAMS:
                if key in lt:
                    lm[key] = lt[key]
                else:
                    lm.pop(key, None)
    return out
