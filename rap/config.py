"""RAP's configuration, built from its one table: rap/schemas/rap-config.json.

Each setting's name, environment variable, task option, default, range and
help are stated once, in that table (as Envoy states each field of a policy
once, with its default and validation). This module reads it and gives:

- ``FIELDS``: every setting as a ``Field`` (its range as text, its check);
- ``RapConfig``: the settings of the decision (scope "decision"), as a
  conformance vector's ``config`` holds them, with the defaults, the
  ``stale_after_s = 3 x period_s`` rule and the range checks of the table;
- ``MonitorConfig``: the settings only the monitor reads (scope "monitor": the
  RTT port, which monitor runs, how many nodes it probes), checked the same
  way; ``DEFAULT_RTT_PORT`` and ``check_rtt_port`` for the port alone.

rap.go reads the same settings from environment variables (RAP_PERIOD_S, ...;
docs/algorithm.md), and its Go tests check its defaults and ranges against the
same table, so a vector's ``config`` means the same thing to both.

Not here: parsing option text (each front end parses its own: rap.deploy,
rap.pyproxy.cli), and the Markdown tables of the docs (rap.config_docs).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rap.errors import OptionError

TABLE_PATH = Path(__file__).parent / "schemas" / "rap-config.json"

# How a range says a field's unit: "> 0 seconds", "in (0, 1] (a fraction of the limit)".
_UNIT_WORDS = {"seconds": " seconds", "fraction": " (a fraction of the limit)"}


class ConfigError(OptionError):
    """A setting outside its allowed range (an OptionError, so also a ValueError).

    ``fields`` are the settings it is about and ``reason`` what is wrong;
    the message is ``"w_cpu: must be >= 0, got -1"``, so a front end can name
    its own option instead (``--w-cpu: must be >= 0, got -1``).
    """

    def __init__(self, fields: Sequence[str], reason: str) -> None:
        self.fields = tuple(fields)
        self.reason = reason
        super().__init__(f"{' + '.join(self.fields)}: {reason}")

    def __reduce__(self):
        return type(self), (self.fields, self.reason)


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Field:
    """One row of the table."""

    name: str
    env: str
    option: str
    scope: str
    type: str
    unit: str
    help: str
    default: float | int | None
    default_factor_of: tuple[str, float] | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple[str, ...] | None = None  # type "string": the allowed values

    @property
    def param(self) -> str:
        """The option as a Python keyword (an invoke task's parameter): ``cpu_threshold``."""
        return self.option.replace("-", "_")

    @property
    def allowed(self) -> str:
        """The range as the docs write it: ``> 0``, ``(0, 1]``, ``>= 0``, ``1..65535``."""
        if self.choices:
            return ", ".join(self.choices)
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            if self.type == "integer" and not (self.min_open or self.max_open):
                return f"{_num(lo)}..{_num(hi)}"
            return f"{'(' if self.min_open else '['}{_num(lo)}, {_num(hi)}{')' if self.max_open else ']'}"
        if lo is not None:
            return f"{'>' if self.min_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.max_open else '<='} {_num(hi)}"
        return "any"

    @property
    def default_text(self) -> str:
        if self.default_factor_of:
            other, factor = self.default_factor_of
            return f"{_num(factor)} × {other}"
        return self.default if isinstance(self.default, str) else _num(self.default)

    def describe(self) -> str:
        """One line of option help: what it is, its range and its default."""
        return f"{self.help}; {self._requirement(say_unit=self.unit not in self.help)} (default {self.default_text})"

    def _requirement(self, say_unit: bool = True) -> str:
        if self.choices:
            return f"one of {self.allowed}"
        both = self.min is not None and self.max is not None
        if self.type == "integer":
            return f"{f'a {self.unit} ' if say_unit else ''}{'in ' if both else ''}{self.allowed}"
        return f"{'in ' if both else ''}{self.allowed}{_UNIT_WORDS.get(self.unit, '') if say_unit else ''}"

    def check(self, value: Any) -> float | int | str:
        """``value`` if it is in range (an integral float becomes an int for integer fields)."""
        if self.choices:
            if value not in self.choices:
                raise ConfigError((self.name,), f"must be {self._requirement()}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError((self.name,), f"must be {'a number' if self.type == 'number' else self._requirement()}, "
                                            f"got {value!r}")
        lo, hi = self.min, self.max
        ok = ((lo is None or (value > lo if self.min_open else value >= lo)) and
              (hi is None or (value < hi if self.max_open else value <= hi)))
        ok = ok and (isinstance(value, int) or math.isfinite(value))  # an unbounded range would let inf through
        if self.type == "integer":
            ok = ok and float(value).is_integer()
        if not ok:  # NaN fails every comparison, so it lands here too
            shown = _num(value) if self.type == "integer" else value  # a port typed as 80 is not "80.0"
            raise ConfigError((self.name,), f"must be {self._requirement()}, got {shown}")
        return int(value) if self.type == "integer" else value


@dataclass(frozen=True)
class Constraint:
    """A rule over several fields; the only kind is ``sum_positive``."""

    kind: str
    fields: tuple[str, ...]
    help: str

    def check(self, values: Mapping[str, float]) -> None:
        if not sum(values[f] for f in self.fields) > 0:
            raise ConfigError(self.fields, f"must be > 0 ({self.help})")


_PLAIN_KEYS = set(Field.__dataclass_fields__) - {"default", "default_factor_of"}


def _load(path: Path = TABLE_PATH) -> tuple[dict[str, Field], tuple[Constraint, ...]]:
    table = json.loads(path.read_text())
    fields: dict[str, Field] = {}
    for row in table["fields"]:
        kind = {"number": float, "integer": int, "string": str}[row["type"]]
        factor = row.get("default_factor_of")
        if factor is not None and factor[0] not in fields:
            raise ValueError(f"{path}: {row['name']}: default_factor_of names {factor[0]!r}, not an earlier field")
        plain = {k: (tuple(v) if k == "choices" else v) for k, v in row.items() if k in _PLAIN_KEYS}
        fields[row["name"]] = Field(**plain, default=None if row["default"] is None else kind(row["default"]),
                                    default_factor_of=tuple(factor) if factor else None)
    constraints = []
    for row in table.get("constraints", []):
        if row["kind"] != "sum_positive" or not set(row["fields"]) <= set(fields):
            raise ValueError(f"{path}: constraint {row}: only sum_positive over known fields is understood")
        constraints.append(Constraint(row["kind"], tuple(row["fields"]), row["help"]))
    return fields, tuple(constraints)


FIELDS, CONSTRAINTS = _load()
DECISION_FIELDS = tuple(f for f in FIELDS.values() if f.scope == "decision")
MONITOR_FIELDS = tuple(f for f in FIELDS.values() if f.scope == "monitor")
DEFAULT_RTT_PORT: int = FIELDS["rtt_port"].default


def check_rtt_port(value: Any) -> int:
    """The monitor's TCP port for RTT probes, checked against the table (1..65535)."""
    return FIELDS["rtt_port"].check(value)


class _RapConfigMethods:
    def __post_init__(self) -> None:
        for f in DECISION_FIELDS:  # in table order, so a default_factor_of field is already checked
            value = getattr(self, f.name)
            if value is None and f.default_factor_of:
                other, factor = f.default_factor_of
                value = factor * getattr(self, other)
            object.__setattr__(self, f.name, f.check(value))
        for c in CONSTRAINTS:
            c.check(self.as_dict())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "RapConfig":
        """Build from a dict (a vector's ``config``, a CLI), rejecting unknown keys."""
        values = dict(values or {})
        known = sorted(f.name for f in DECISION_FIELDS)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError((unknown[0],), f"unknown RAP setting; known settings are {', '.join(known)}")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


RapConfig = dataclasses.make_dataclass(
    "RapConfig",
    [(f.name, {"string": str, "integer": int}.get(f.type, float) if f.default is not None else float | None,
      dataclasses.field(default=f.default))
     for f in DECISION_FIELDS],
    bases=(_RapConfigMethods,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "RAP's decision settings: one field per 'decision' row of rap/schemas/rap-config.json, "
                   "with its default; a default of None is resolved by the row's default_factor_of "
                   "(stale_after_s = 3 x period_s). A value out of range is a ConfigError naming the field.",
    },
)


class _MonitorConfigMethods:
    def __post_init__(self) -> None:
        for f in MONITOR_FIELDS:
            object.__setattr__(self, f.name, f.check(getattr(self, f.name)))

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


MonitorConfig = dataclasses.make_dataclass(
    "MonitorConfig",
    [(f.name, {"string": str, "integer": int}.get(f.type, float), dataclasses.field(default=f.default))
     for f in MONITOR_FIELDS],
    bases=(_MonitorConfigMethods,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "What only RAP's monitor reads: one field per 'monitor' row of rap/schemas/rap-config.json, "
                   "with its default. A value out of range is a ConfigError naming the field.",
    },
)
