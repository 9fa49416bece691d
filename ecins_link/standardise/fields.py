"""SQL expressions that normalise and validate one contact field (postcode, phone, email).

Used by ingest (to null an invalid optional field and record a field issue) and by standardise, so the
two stages agree on what is valid.  Each function takes a SQL expression and returns a SQL expression that
evaluates its input once: validation and formatting are one anchored ``regexp_replace`` whose fallback
alternative ``^.*$`` yields the empty string (-> NULL) when the value is not valid.
"""

from __future__ import annotations

# UK postcode format (BS 7666 / gov.uk data standard), incl. GIR 0AA and the London sub-district forms.
OUTWARD_RE = r"[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9](?:[0-9]|[ABEHMNPRV-Y])?|[0-9][A-HJKPS-UW])"
INWARD_RE = r"[0-9][ABD-HJLNP-UW-Z]{2}"
POSTCODE_RE = rf"^(GIR 0AA|{OUTWARD_RE} {INWARD_RE})$"
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"


def _keep_if(expr: str, body: str) -> str:
    """``expr`` when it fully matches ``body`` (a regex with no capture groups), else NULL; ``expr`` evaluated once."""
    return f"NULLIF(regexp_replace({expr}, '(?s)^({body})$|^.*$', '\\1'), '')"


def postcode_sql(expr: str) -> str:
    """``AB1 2CD`` (upper case, one space before the inward code) or NULL when not a valid UK format."""
    compact = f"regexp_replace(upper({expr}), '[^A-Z0-9]', '', 'g')"
    return (f"NULLIF(trim(regexp_replace({compact}, '^(?:(GIR)(0AA)|({OUTWARD_RE})({INWARD_RE}))$|^.*$', "
            f"'\\1\\3 \\2\\4')), '')")


def phone_sql(expr: str) -> str:
    """UK national form (digits only, leading 0; +44 / 0044 / 44 handled; extension dropped) or NULL."""
    no_ext = f"regexp_replace(replace(lower({expr}), '(0)', ''), '\\s*(ext|extn|extension|x)\\.?\\s*[0-9]+\\s*$', '')"
    digits = f"regexp_replace({no_ext}, '[^0-9]', '', 'g')"
    # 0044... -> 0...; 44 + >= 10 digits -> 0...; 10 digits not starting 0 -> 0 + digits; else unchanged
    national = f"regexp_replace({digits}, '^(?:0044([0-9]*)|44([0-9]{{10,}})|([1-9][0-9]{{9}}))$', '0\\1\\2\\3')"
    return _keep_if(national, "0[1-9][0-9]{8,9}")


def email_sql(expr: str) -> str:
    """Lower-case trimmed e-mail address, or NULL when it does not look like one."""
    return _keep_if(f"lower(trim({expr}))", EMAIL_RE[1:-1])


def postcode_any_sql(expr: str) -> str:
    """A postcode of any country, compared as written: upper case, runs of space / punctuation as one space,
    trimmed (``2470``, ``75008``, ``D02 X285``, ``SW1A 1AA``); NULL when no letter or digit is left."""
    return f"NULLIF(trim(regexp_replace(upper({expr}), '[^A-Z0-9]+', ' ', 'g')), '')"


def phone_any_sql(expr: str) -> str:
    """A phone number of any country, compared as written: its digits (a leading ``+`` dropped, an extension
    dropped); NULL when fewer than five digits are left (not a number)."""
    no_ext = f"regexp_replace(lower({expr}), '\\s*(ext|extn|extension|x)\\.?\\s*[0-9]+\\s*$', '')"
    return _keep_if(f"regexp_replace({no_ext}, '[^0-9]', '', 'g')", "[0-9]{5,}")


def identifier_sql(expr: str) -> str:
    """A reference number (NHS, NI, register number...): upper case, letters and digits only, or NULL."""
    return f"NULLIF(regexp_replace(upper({expr}), '[^A-Z0-9]', '', 'g'), '')"


def attribute_sql(expr: str) -> str:
    """A free-text attribute (birth place, occupation): upper case, punctuation as spaces, one space between
    words, or NULL."""
    return f"NULLIF(trim(regexp_replace(upper({expr}), '[^A-Z0-9]+', ' ', 'g')), '')"


def extra_columns(names: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(map key in ``person_records.extras``, ``person_std`` column, normalising SQL) for the project's
    identifiers (``id_<name>``) and attributes (``attr_<name>``), in a stable order."""
    out = []
    for kind, prefix, fn in (("identifiers", "id", identifier_sql), ("attributes", "attr", attribute_sql)):
        for name in sorted(set(names.get(kind, []))):
            out.append((f"{prefix}:{name}", f"{prefix}_{name}", fn(f"b.extras['{prefix}:{name}']")))
    return out


def year_from_text_sql(expr: str) -> str:
    """The year of a date text that is not a valid date (``1836-81-01`` -> 1836): its one four-digit group,
    or NULL when it has none or several."""
    groups = f"list_filter(regexp_extract_all({expr}, '[0-9]+'), g -> length(g) = 4)"
    return f"CASE WHEN len({groups}) = 1 THEN NULLIF(CAST({groups}[1] AS INT), 0) END"
