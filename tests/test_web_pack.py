"""Static pack fixes that need no browser: plain labels for codes, one colour per category (the same on every
page), WCAG AA contrast of text colours, no mid-word breaking rule, A4 print with protective marking, and
evidence worded per condition."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from ecins_link.report.charts import timeline_svg
from ecins_link.report.evidence_words import evidence_sentences
from ecins_link.report.labels import (
    _data,
    category_colour,
    category_label,
    role_label,
    signal_label,
    source_label,
)
from ecins_link.scoring.taxonomy import DEFAULT_TAXONOMY, load_taxonomy

CSS = (resources.files("ecins_link.report") / "templates" / "style.css").read_text(encoding="utf-8")


def _lum(colour: str) -> float:
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_lum(a), _lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_taxonomy_code_has_words() -> None:
    tax = load_taxonomy(DEFAULT_TAXONOMY)
    for s in tax.signals:
        assert signal_label(s.code) != s.code and "_" not in signal_label(s.code)
    for c in tax.categories:
        assert "_" not in category_label(c) and category_label(c) == category_label(c).lower()
    assert role_label("V") == "victim" and role_label("s") == "suspect" and role_label("X9") == "x9"
    assert source_label("police_occurrences") == "Police occurrences"
    assert signal_label("NEVER_SEEN_CODE") == "Never seen code"  # unknown codes are worded, not dropped


def test_category_colours_are_fixed_distinct_and_visible() -> None:
    tax = load_taxonomy(DEFAULT_TAXONOMY)
    colours = [category_colour(c) for c in tax.categories]
    assert len(set(colours)) == len(colours)
    for c in colours:  # graphical objects: 3:1 against the white chart background (WCAG 2.1 1.4.11)
        assert contrast(c, "#ffffff") >= 3.0, c
    assert category_colour("UNKNOWN_X") == category_colour("UNKNOWN_X")  # stable for unlisted categories
    # the same category gets the same colour whatever else is on the chart
    one = timeline_svg([{"event_date": "2026-01-02", "agency": "police", "signal": "DA_VICTIM", "category": "DA"}])
    two = timeline_svg([{"event_date": "2026-01-02", "agency": "police", "signal": "ASB_REPORT", "category": "ASB"},
                        {"event_date": "2026-02-02", "agency": "police", "signal": "DA_VICTIM", "category": "DA"}])
    da = category_colour("DA")
    assert f'fill="{da}"' in one and f'fill="{da}"' in two
    assert "domestic abuse" in two and ">DA<" not in two  # legend in words


@pytest.mark.parametrize("selector", [".muted", "tr.why td", "body", "h2", ".marker", "a"])
def test_text_colours_meet_wcag_aa(selector: str) -> None:
    rule = re.search(r"(?m)^" + re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert rule, selector
    colour = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{3,6})", rule.group(1))
    assert colour, selector
    for background in ("#ffffff", "#f6f7f9", "#fafbfc"):  # sections, page, the 'why linked' rows
        assert contrast(colour.group(1), background) >= 4.5, (selector, background)


def test_no_mid_word_breaks_and_a4_print_with_marking() -> None:
    assert "anywhere" not in CSS and "break-all" not in CSS
    assert re.search(r"@page\s*\{[^@]*size:\s*A4", CSS)
    assert CSS.count('content: "OFFICIAL-SENSITIVE"') >= 1
    case_tpl = (resources.files("ecins_link.report") / "templates" / "case.html.j2").read_text(encoding="utf-8")
    assert "@top-right" in case_tpl and "case_ref" in case_tpl


def test_evidence_in_words_names_each_conditions_own_agencies() -> None:
    evidence = json.dumps({"rule": "r", "window_days": 365, "conditions": [
        {"id": "da", "label": "Domestic-abuse incidents", "met": True, "count": 4, "min_count": 3},
        {"id": "mh", "label": "Mental-health concern", "met": False, "count": 0, "min_count": 1}],
        "records": [{"agency": "police", "signal": "DA_VICTIM"}, {"agency": "council", "signal": "DA_CONCERN"},
                    {"agency": "health", "signal": "MH_CONCERN"}]})
    selectors = {("r", "da"): (frozenset({"DA_VICTIM", "DA_CONCERN"}), frozenset(), False),
                 ("r", "mh"): (frozenset(), frozenset({"MENTAL_HEALTH"}), False)}
    words = evidence_sentences(evidence, selectors, {"MH_CONCERN": "MENTAL_HEALTH"})
    assert words[0] == ("4 records: domestic-abuse incidents in 12 months, recorded by Council and Police "
                        "(threshold 3) — met.")
    assert "Health" not in words[0] and "not met" in words[1]
    withheld = evidence_sentences(json.dumps({"conditions": [{"id": "x", "label": "X", "met": True, "count": None}],
                                              "counts_withheld": "..."}))
    assert withheld[0].startswith("Count withheld") and any("withheld" in w for w in withheld[1:])


def test_evidence_in_words_says_which_records_were_placed_with_uncertainty() -> None:
    records = [{"agency": "police", "signal": "ASB", "placed": "building"},
               {"agency": "police", "signal": "ASB", "placed": "building"},
               {"agency": "council", "signal": "ASB", "placed": "ambiguous"},
               {"agency": "housing", "signal": "ASB", "placed": "event"}]
    words = evidence_sentences(json.dumps({"rule": "r", "conditions": [], "records": records}))
    assert "2 of the records give an address known only at building level" in " ".join(words)
    assert "1 of the records give an address that fits more than one premises" in " ".join(words)
    certain = evidence_sentences(json.dumps({"rule": "r", "conditions": [], "records": records[3:]}))
    assert not any("certainty" in w for w in certain)


def test_labels_file_lists_every_shipped_category() -> None:
    tax = load_taxonomy(DEFAULT_TAXONOMY)
    assert set(tax.categories) <= set(_data()["categories"])


def test_pack_notes_possible_same_person_inside_the_review_band(sample_run) -> None:  # noqa: ANN001
    """The sample run's pack: a review-band pair split across two persons of a case gets a note with its
    probability (and the probability lies inside the project's review band)."""
    from ecins_link.config import load_config

    lower, upper = load_config(sample_run.project).linkage.review_band
    notes = []
    for page in (sample_run.out_dir / "panel" / "cases").glob("*.html"):
        notes += re.findall(r"may be the same person \(match probability ([0-9.]+)", page.read_text(encoding="utf-8"))
    assert notes, "the sample town has persons split inside the review band"
    assert all(lower - 0.005 <= float(p) <= upper + 0.005 for p in notes)  # (shown to 2 decimals)
