"""The signal taxonomy (TOML data file): every signal code, its category, weight, decay and gravity.

Validated at load with pydantic; any mistake is one :class:`~ecins_link.config.ConfigError` naming the
file, the signal and the key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecins_link.config import ConfigError, read_toml

DEFAULT_TAXONOMY = Path(__file__).resolve().parent / "taxonomy.toml"


class SignalDef(BaseModel):
    """One signal code of the taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1)
    description: str = ""
    category: str
    weight: float = Field(ge=0)
    half_life_days: float = Field(gt=0)
    gravity: float = Field(default=0.0, ge=0)


class Taxonomy(BaseModel):
    """All categories and signals; ``signal(code)`` looks one up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[str]
    signals: list[SignalDef]

    @model_validator(mode="after")
    def _consistent(self) -> Taxonomy:
        seen: set[str] = set()
        for s in self.signals:
            if s.code in seen:
                raise ValueError(f"signal '{s.code}': key 'code': code is repeated")
            seen.add(s.code)
            if s.category not in self.categories:
                raise ValueError(f"signal '{s.code}': key 'category': '{s.category}' is not one of 'categories'")
        return self

    @property
    def codes(self) -> set[str]:
        """All signal codes."""
        return {s.code for s in self.signals}

    def signal(self, code: str) -> SignalDef:
        """The definition of ``code`` (KeyError if unknown)."""
        for s in self.signals:
            if s.code == code:
                return s
        raise KeyError(code)

    def codes_in(self, category: str) -> list[str]:
        """Codes of one category."""
        return [s.code for s in self.signals if s.category == category]

    def rows(self) -> list[tuple[str, str, float, float, float]]:
        """(code, category, weight, half_life_days, gravity) rows, for a SQL lookup table."""
        return [(s.code, s.category, s.weight, s.half_life_days, s.gravity) for s in self.signals]


def _where(err: ValidationError, data: dict) -> str:
    first = err.errors()[0]
    loc = list(first["loc"])
    msg = first["msg"]
    if len(loc) >= 2 and loc[0] == "signals" and isinstance(loc[1], int):
        items = data.get("signals") or []
        code = items[loc[1]].get("code", f"#{loc[1] + 1}") if loc[1] < len(items) and isinstance(items[loc[1]], dict) else f"#{loc[1] + 1}"
        key = ".".join(str(p) for p in loc[2:]) or "(signal)"
        return f"signal '{code}': key '{key}': {msg}"
    if not loc:  # model-level validator: message already names signal and key
        return msg.removeprefix("Value error, ")
    return f"key '{'.'.join(str(p) for p in loc)}': {msg}"


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy TOML file (default: the shipped ``taxonomy.toml``)."""
    path = Path(path) if path else DEFAULT_TAXONOMY
    data = read_toml(path, "taxonomy file")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: {_where(err, data)}") from None
