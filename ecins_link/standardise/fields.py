"""SQL expressions that normalise and validate one contact field (postcode, phone, email).

Used by ingest (to null an invalid optional field and record a field issue) and by standardise, so the
two stages agree on what is valid.  Each function takes a SQL expression and returns a SQL expression.
"""

from __future__ import annotations

# UK postcode format (BS 7666 / gov.uk data standard), incl. GIR 0AA and the London sub-district forms.
POSTCODE_RE = (
    r"^(GIR 0AA|[A-PR-UWYZ]([0-9]{1,2}|([A-HK-Y][0-9]([0-9]|[ABEHMNPRV-Y])?)|[0-9][A-HJKPS-UW])"
    r" [0-9][ABD-HJLNP-UW-Z]{2})$"
)
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"


def postcode_sql(expr: str) -> str:
    """``AB1 2CD`` (upper case, one space before the inward code) or NULL when not a valid UK format."""
    compact = f"regexp_replace(upper({expr}), '[^A-Z0-9]', '', 'g')"
    spaced = f"CASE WHEN length({compact}) BETWEEN 5 AND 7 THEN substr({compact}, 1, length({compact}) - 3) || ' ' || right({compact}, 3) END"
    return f"CASE WHEN regexp_full_match({spaced}, '{POSTCODE_RE}') THEN {spaced} END"


def phone_sql(expr: str) -> str:
    """UK national form (digits only, leading 0; +44 / 0044 / 44 handled; extension dropped) or NULL."""
    no_ext = f"regexp_replace(replace(lower({expr}), '(0)', ''), '\\s*(ext|extn|extension|x)\\.?\\s*[0-9]+\\s*$', '')"
    digits = f"regexp_replace({no_ext}, '[^0-9]', '', 'g')"
    national = (f"CASE WHEN {digits} LIKE '0044%' THEN '0' || substr({digits}, 5) "
                f"WHEN {digits} LIKE '44%' AND length({digits}) >= 12 THEN '0' || substr({digits}, 3) "
                f"WHEN {digits} NOT LIKE '0%' AND length({digits}) = 10 THEN '0' || {digits} "
                f"ELSE {digits} END")
    return f"CASE WHEN regexp_full_match({national}, '0[1-9][0-9]{{8,9}}') THEN {national} END"


def email_sql(expr: str) -> str:
    """Lower-case trimmed e-mail address, or NULL when it does not look like one."""
    e = f"lower(trim({expr}))"
    return f"CASE WHEN regexp_full_match({e}, '{EMAIL_RE}') THEN {e} END"
