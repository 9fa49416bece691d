"""Location rules on fixture graphs: ASB hotspots and cuckooing (churn, residents, single-agency visibility)."""

from __future__ import annotations

import json

from test_scoring import flags

from ecins_link.scoring.fixtures import World


# ------------------------------------------------------------------------------------------- ASB
def test_asb_hotspot_needs_two_agencies(scored) -> None:
    def build(w: World) -> None:
        for d in (10, 40, 70):
            w.event("police", "ASB_REPORT", d, location_id="U100000020")
        for agency, d in (("police", 10), ("housing", 40), ("council", 70)):
            w.event(agency, "ASB_NOISE" if agency != "police" else "ASB_REPORT", d, location_id="U100000021")
        for agency, d in (("police", 10), ("housing", 200), ("council", 300)):  # only one inside 183 days
            w.event(agency, "ASB_REPORT", d, location_id="U100000022")

    got = flags(scored(build), "asb_hotspot")
    assert set(got) == {"U100000021"}
    assert list(got["U100000021"]["uprns"]) == ["100000021"]
    assert not got["U100000021"]["visible_to_single_agency"]


# ------------------------------------------------------------------------------------------- cuckooing
def _cuckoo(w: World, loc: str, visitors: int, vulnerable: bool = True) -> None:
    res = f"R{loc}"
    w.person(res, 52)
    w.live(res, loc)
    if vulnerable:
        w.event("council", "ADULT_SAFEGUARDING", 40, person=res)
    w.event("police", "DRUG_SUPPLY", 20, location_id=loc)
    for i in range(visitors):
        v = f"V{loc}{i}"
        w.person(v, 22 + i)
        w.live(v, f"U9{loc[1:]}{i}")
        w.event("police", "ASB_REPORT", 10 + 5 * i, person=v, location_id=loc, role="S")


def test_cuckooing_needs_four_unrelated_visitors(scored) -> None:
    store = scored(lambda w: (_cuckoo(w, "U100000040", 3), _cuckoo(w, "U100000041", 4),
                              _cuckoo(w, "U100000042", 6, vulnerable=False)))
    got = flags(store, "cuckooing")
    assert set(got) == {"U100000041"}
    ev = json.loads(got["U100000041"]["evidence"])
    churn = next(c for c in ev["conditions"] if c["id"] == "churn")
    assert churn["metric_value"] == 4
    assert churn["related_person_ids"] == [f"VU100000041{i}" for i in range(4)]
    assert "RU100000041" in got["U100000041"]["person_ids"]


def test_cuckooing_uses_graph_churn_table(scored) -> None:
    def build(w: World) -> None:
        _cuckoo(w, "U100000043", 1)
        w.churn("U100000043", unrelated=5)

    assert set(flags(scored(build), "cuckooing")) == {"U100000043"}


def test_cuckooing_known_to_police_alone_is_visible(scored) -> None:
    def build(w: World) -> None:
        for loc, vuln_agency in (("U100000095", "police"), ("U100000096", "council")):
            res = f"R{loc}"
            w.person(res, 47)
            w.live(res, loc)
            w.event(vuln_agency, "HATE_CRIME" if vuln_agency == "police" else "VULNERABLE_ADULT", 30, person=res,
                    role="V")
            w.event("police", "DRUG_POSSESSION", 25, location_id=loc)
            for i in range(4):
                v = f"V{loc}{i}"
                w.person(v, 20 + i)
                w.live(v, f"U7{loc[1:]}{i}")
                w.event("police", "ASB_REPORT", 5 + i, person=v, location_id=loc, role="S")

    got = flags(scored(build), "cuckooing")
    assert set(got) == {"U100000095", "U100000096"}
    assert bool(got["U100000095"]["visible_to_single_agency"]) is True
    assert bool(got["U100000096"]["visible_to_single_agency"]) is False


def test_asb_case_without_own_address_counts_at_the_tenants_home(scored) -> None:
    def build(w: World) -> None:
        w.person("P001401", 44)
        w.live("P001401", "U100000097")
        w.event("housing", "ASB_HARASSMENT", 15, person="P001401")  # a tenancy case: no address of its own
        w.event("police", "ASB_REPORT", 30, location_id="U100000097")
        w.event("council", "ASB_NOISE", 45, location_id="U100000097")

    got = flags(scored(build), "asb_hotspot")
    assert set(got) == {"U100000097"}
    assert json.loads(got["U100000097"]["evidence"])["conditions"][0]["agencies"] == 3


def test_cuckooing_resident_last_seen_by_an_old_contact_is_still_resident(scored) -> None:
    def build(w: World) -> None:
        _cuckoo(w, "U100000044", 4)
        # the resident's only dated record is a contact 200 days ago: still living there (current address)
        w.rows["residences"] = [r if r[0] != "RU100000044" else (*r[:3], w.day(200), w.day(200), 1)
                                for r in w.rows["residences"]]

    assert set(flags(scored(build), "cuckooing")) == {"U100000044"}
