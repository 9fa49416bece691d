"""``run_summary.json``: what one run did, in one small machine-readable file in the output folder.

Keys (extend by adding): ``run_id``, ``project``, ``status`` (ok / failed), ``error``, ``written_at``,
``stages`` [{stage, seconds, started, ended}], ``sources`` [rows read / accepted / quarantined, quarantined
share, limit, status, top reasons], ``nulled_fields`` {source: {field: records whose value standardisation
nulled}}, ``trained_comparisons``, ``untrained_comparisons`` [{comparison, reason}], ``dropped_fields``,
``candidate_pairs``, ``pairs``, ``clusters``, ``warnings``, ``location_steps`` (the locations stage's per-step
wall and CPU seconds and uk_address_matcher counts, from its audit row of this run; null when it did not run),
``linkage_passes`` (what each re-weighting step after the first clustering did: a source's own prior, household
moves, same home, same identity, name variants; empty when the persons stage did not record them), ``homes``
(what the homes stage settled by people's other records, and the sources it found writing "23B" for flat B, with
their evidence; null when it did not run).  The linkage
keys come from the persons stage's
``linkage_models.summary_json`` when it wrote them; absent keys are empty / null.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ecins_link.config import ProjectConfig
from ecins_link.store import Store

FILE = "run_summary.json"
# person_records field -> the person_std column it becomes
_STD_FIELDS = {"title": "title", "forenames": "forename", "surname": "surname", "dob": "dob", "sex": "sex",
               "postcode": "postcode", "address_text": "address_norm", "uprn": "uprn", "phone": "phone",
               "email": "email"}
_LINKAGE_KEYS = ("trained_comparisons", "untrained_comparisons", "dropped_fields", "candidate_pairs", "clusters")
# what the persons stage's second look did (matching/person_passes.PASSES), repeated as ``linkage_passes``
_PASS_KEYS = ("source_priors", "same_source_person_id", "household_moves", "same_home", "same_identity",
              "same_identity_variants", "same_identity_keystroke")


def nulled_fields(store: Store) -> dict[str, dict[str, int]]:
    """Per source and field: records with a value in ``person_records`` and none in ``person_std`` (one query)."""
    if not (store.has_table("person_records") and store.has_table("person_std")):
        return {}
    std_cols = {r[0] for r in store.con.execute("DESCRIBE person_std").fetchall()}
    rec_cols = {r[0] for r in store.con.execute("DESCRIBE person_records").fetchall()}
    pairs = [(f, s) for f, s in _STD_FIELDS.items() if f in rec_cols and s in std_cols]
    if not pairs:
        return {}
    sums = ", ".join(f'count(*) FILTER (WHERE r."{f}" IS NOT NULL AND s."{s}" IS NULL) AS "{f}"' for f, s in pairs)
    rows = store.con.execute(f"""SELECT r.source, {sums} FROM person_records r
        JOIN person_std s ON s.source = r.source AND s.record_key = r.record_key GROUP BY r.source
        ORDER BY r.source""").fetchall()
    return {row[0]: {f: int(n) for (f, _s), n in zip(pairs, row[1:], strict=True) if n} for row in rows}


def _linkage(store: Store) -> dict[str, Any]:
    """The latest ``linkage_models.summary_json`` (only its known keys), plus counted pairs and clusters."""
    out: dict[str, Any] = {"trained_comparisons": [], "untrained_comparisons": [], "dropped_fields": [],
                           "candidate_pairs": None, "pairs": None, "clusters": None, "warnings": [],
                           "linkage_passes": {}}
    if store.has_table("linkage_models"):
        row = store.con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()
        try:
            got = json.loads(row[0]) if row and row[0] else {}
        except (TypeError, ValueError):
            got = {}
        if isinstance(got, dict):
            out.update({k: got[k] for k in _LINKAGE_KEYS if k in got})
            out["linkage_passes"] = {k: got[k] for k in _PASS_KEYS if isinstance(got.get(k), dict)}
            if isinstance(got.get("warnings"), list):
                out["warnings"] = [str(w) for w in got["warnings"]]
    if store.has_table("person_pairs"):
        out["pairs"] = store.count("person_pairs")
    if out["clusters"] is None and store.has_table("person_clusters"):
        out["clusters"] = store.con.execute("SELECT count(DISTINCT person_id) FROM person_clusters").fetchone()[0]
    return out


def build_summary(store: Store, config: ProjectConfig, result: Any, status: str = "ok",
                  error: str | None = None, warnings: list[str] | None = None) -> dict[str, Any]:
    """The run summary as a dict (what ``run_summary.json`` holds); ``result`` is the pipeline's RunResult."""
    from ecins_link.ingest.health import ingest_health

    health = ingest_health(store, config)
    spans = getattr(result, "stage_spans", {}) or {}
    stages = [{"stage": name, "seconds": secs, "started": spans.get(name, (None, None))[0],
               "ended": spans.get(name, (None, None))[1]}
              for name, secs in (getattr(result, "stage_seconds", {}) or {}).items()]
    linkage = _linkage(store)
    homes = homes_summary(store, getattr(result, "run_id", None))
    skipped = [f"homes stage skipped: {homes['skipped']}"] if homes and homes.get("skipped") else []
    all_warnings = list(dict.fromkeys((warnings or []) + health.warnings + linkage.pop("warnings") + skipped))
    return {"run_id": getattr(result, "run_id", None), "project": config.project.name, "status": status,
            "error": error, "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "stages": stages, "sources": health.sources, "nulled_fields": nulled_fields(store), **linkage,
            "warnings": all_warnings, "location_steps": location_steps(store, getattr(result, "run_id", None)),
            "homes": homes}


def _audit_json(store: Store, action: str, run_id: str | None) -> tuple[dict, dict] | None:
    """(details, row_counts) of the newest ``action`` audit row of run ``run_id``, both JSON objects; None when
    there is none or it does not parse."""
    row = store.con.execute("SELECT details, row_counts FROM audit_log WHERE action = ? AND run_id = ? "
                            "ORDER BY seq DESC LIMIT 1", [action, run_id]).fetchone() if run_id else None
    try:
        details, counts = (json.loads(row[0]), json.loads(row[1] or "{}")) if row else (None, None)
    except (TypeError, ValueError):
        return None
    return (details, counts) if isinstance(details, dict) and isinstance(counts, dict) else None


def homes_summary(store: Store, run_id: str | None) -> dict[str, Any] | None:
    """The ``settle_homes`` audit row of run ``run_id``: rows settled, by people's other records and by a source's
    learnt way of writing flats, and those sources with their evidence; None when the homes stage did not run."""
    got = _audit_json(store, "settle_homes", run_id)
    if got is None:
        return None
    details, counts = got
    return {"enabled": details.get("enabled"), "skipped": details.get("skipped"), "settled": counts.get("settled"),
            "settled_by_source_letters": counts.get("settled_by_source_letters"),
            "letter_sources": details.get("letter_sources", [])}


def location_steps(store: Store, run_id: str | None) -> dict[str, Any] | None:
    """The ``link_locations`` audit row of run ``run_id``: its ``seconds`` / ``cpu_seconds`` per step and its
    ``uk_address_matcher*`` counts; None when the locations stage did not run in that run."""
    got = _audit_json(store, "link_locations", run_id)
    steps = got[0].get("steps") if got else None
    if not isinstance(steps, dict):
        return None
    return {k: v for k, v in steps.items() if k in ("seconds", "cpu_seconds") or k.startswith("uk_address_matcher")}


def write_summary(summary: dict[str, Any], out_dir: Path) -> Path:
    """Write ``run_summary.json`` into ``out_dir`` (created); its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_summary(out_dir: Path) -> dict[str, Any]:
    """The ``run_summary.json`` of an output folder."""
    return json.loads((Path(out_dir) / FILE).read_text(encoding="utf-8"))
