"""Record-level noise as agencies really produce it: variants, typos, swaps, folded accents, bad dates."""

from __future__ import annotations

import unicodedata

import numpy as np

from ecins_link.synth import vocab

_EXTRA_FOLD = str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "ß": "SS"})
_MONTHS = np.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])


def fold(text: str) -> str:
    """ASCII-fold (KOZŁOWSKA -> KOZLOWSKA) as many agency systems do."""
    text = text.translate(_EXTRA_FOLD)
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def typo(rng: np.random.Generator, s: str) -> str:
    """One keying error: swap, drop, double or substitute a letter."""
    if len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    k = int(rng.integers(4))
    if k == 0:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if k == 1:
        return s[:i] + s[i + 1:]
    if k == 2:
        return s[:i] + s[i] + s[i:]
    sub = "AEIOU" if s[i] in "AEIOU" else "BCDFGHKLMNPRSTVW"
    return s[:i] + sub[int(rng.integers(len(sub)))] + s[i + 1:]


def names(rng: np.random.Generator, fore: np.ndarray, middle: np.ndarray, sur: np.ndarray, maiden: np.ndarray,
          stale: np.ndarray, rates: dict) -> tuple[list[str], list[str], list[str]]:
    """Per record: (forename, middle, surname) with nicknames, transliterations, typos, maiden names, swaps."""
    nick = vocab.name_variants()
    svar = vocab.surname_variants()
    n = len(fore)
    r = rng.random((n, 7))
    pick = rng.integers(0, 1_000_000, n)
    fo, mi, su = [], [], []
    for i in range(n):
        f, m, s = fore[i], middle[i], sur[i]
        opts = nick.get(f)
        if opts:
            translit = [v for v, k in opts if k in ("transliteration", "folded", "spelling")]
            other = [v for v, k in opts if k not in ("transliteration", "folded", "spelling")]
            if translit and r[i, 0] < rates["transliteration"]:
                f = translit[pick[i] % len(translit)]
            elif other and r[i, 1] < rates["nickname"]:
                f = other[pick[i] % len(other)]
        if maiden[i] and stale[i]:
            s = maiden[i]
        elif s in svar and r[i, 2] < 0.25:
            s = svar[s][pick[i] % len(svar[s])]
        if r[i, 3] < rates["typo_forename"]:
            f = typo(rng, f)
        if r[i, 4] < rates["typo_surname"]:
            s = typo(rng, s)
        if r[i, 5] < rates["swap_names"]:
            f, s = s, f
        if m and r[i, 6] < 0.3:
            m = m[0] if r[i, 6] < 0.15 else ""
        fo.append(f)
        mi.append(m)
        su.append(s)
    return fo, mi, su


def dobs(rng: np.random.Generator, dob: np.ndarray, rates: dict) -> np.ndarray:
    """DOBs with transposed day/month, typos and gaps (NaT = missing)."""
    d = dob.astype("datetime64[D]")
    n = len(d)
    y = d.astype("datetime64[Y]").astype(int) + 1970
    m = d.astype("datetime64[M]").astype(int) % 12 + 1
    day = (d - d.astype("datetime64[M]")).astype(int) + 1
    r = rng.random((n, 3))
    swap = (r[:, 0] < rates["dob_transposed"]) & (day <= 12) & (day != m)
    m2, day2 = np.where(swap, day, m), np.where(swap, m, day)
    bump = r[:, 1] < rates["dob_typo"]
    y2 = np.where(bump & (r[:, 1] < rates["dob_typo"] / 2), y + rng.choice([-1, 1], n), y)
    day2 = np.where(bump & (r[:, 1] >= rates["dob_typo"] / 2), np.clip(day2 + rng.choice([-1, 1], n), 1, 28), day2)
    leap = (y2 % 4 == 0) & ((y2 % 100 != 0) | (y2 % 400 == 0))
    day2 = np.where((m2 == 2) & (day2 == 29) & ~leap, 28, day2)  # a year typo on 29 Feb lands on the 28th
    out = np.array([f"{a:04d}-{b:02d}-{c:02d}" for a, b, c in zip(y2, m2, day2, strict=True)],
                   dtype="datetime64[D]")
    return np.where(r[:, 2] < rates["dob_missing"], np.datetime64("NaT"), out)


def fmt_dates(d: np.ndarray, style: str) -> list[str]:
    """Format DATE values in an agency's style: dmy (dd/mm/yyyy), iso, dmon (dd-Mon-yyyy); NaT -> ''."""
    out = []
    s = np.datetime_as_string(d.astype("datetime64[D]"), unit="D")
    for v in s:
        if v == "NaT":
            out.append("")
        elif style == "iso":
            out.append(v)
        elif style == "dmy":
            out.append(f"{v[8:10]}/{v[5:7]}/{v[0:4]}")
        else:
            out.append(f"{v[8:10]}-{_MONTHS[int(v[5:7]) - 1]}-{v[0:4]}")
    return out


def fmt_datetimes(d: np.ndarray, minute: np.ndarray, style: str) -> list[str]:
    """'dd/mm/yyyy HH:MM' (dmy) or 'yyyy-mm-dd HH:MM:SS' (iso)."""
    days = fmt_dates(d, "dmy" if style == "dmy" else "iso")
    hh, mm = np.asarray(minute) // 60, np.asarray(minute) % 60
    if style == "dmy":
        return [f"{a} {h:02d}:{m:02d}" for a, h, m in zip(days, hh, mm, strict=True)]
    return [f"{a} {h:02d}:{m:02d}:00" for a, h, m in zip(days, hh, mm, strict=True)]


def postcodes(rng: np.random.Generator, pc: np.ndarray, rates: dict) -> np.ndarray:
    """Postcodes with gaps, keying errors (last two letters swapped) and missing spaces."""
    n = len(pc)
    r = rng.random((n, 3))
    out = pc.astype(object).copy()
    sw = r[:, 1] < rates["postcode_typo"]
    out[sw] = [p[:-2] + p[-1] + p[-2] for p in out[sw]]
    nospace = r[:, 2] < 0.1
    out[nospace] = [p.replace(" ", "") for p in out[nospace]]
    out[r[:, 0] < rates["postcode_missing"]] = ""
    return out


def phones(rng: np.random.Generator, number: np.ndarray) -> list[str]:
    """A person's number (Ofcom drama ranges) in mixed formats: 07700 900123, +44 7700 900123, (01632) 960123."""
    k = rng.integers(0, 4, len(number))
    out = []
    for num, style in zip(number, k, strict=True):
        if not num:
            out.append("")
            continue
        a, b = num[:5], num[5:]
        if style == 0:
            out.append(f"{a} {b}")
        elif style == 1:
            out.append(f"+44 {a[1:]} {b}")
        elif style == 2:
            out.append(f"({a}) {b}" if a.startswith("01") else num)
        else:
            out.append(num)
    return out
