"""RAP's configuration: one home, validated defaults.

The same fields, names and defaults are read by rap.go from flags or
environment variables (see docs/algorithm.md), so a vector's ``config`` means
the same thing to both implementations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value outside its allowed range; the message names the field."""


@dataclass(frozen=True)
class RapConfig:
    period_s: float = 5.0
    # None means "3 x period", the design's default; resolved in __post_init__.
    stale_after_s: float | None = None
    cpu_threshold: float = 0.8
    mem_threshold: float = 0.9
    w_cpu: float = 0.5
    w_mem: float = 0.2
    w_net: float = 0.3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{f.name}: must be a number, got {value!r}")
        if self.stale_after_s is None:
            object.__setattr__(self, "stale_after_s", 3 * self.period_s)
        self._validate()

    def _validate(self) -> None:
        _positive("period_s", self.period_s)
        _positive("stale_after_s", self.stale_after_s)
        _unit_interval("cpu_threshold", self.cpu_threshold)
        _unit_interval("mem_threshold", self.mem_threshold)
        for name in ("w_cpu", "w_mem", "w_net"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.w_cpu + self.w_mem + self.w_net <= 0:
            raise ConfigError(
                "w_cpu + w_mem + w_net: must be > 0 (all weights are 0, so no node can be scored)"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "RapConfig":
        """Build from a dict (a vector's ``config``, a CLI), rejecting unknown keys."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: unknown RAP setting; known settings are {', '.join(sorted(known))}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name}: must be > 0 seconds, got {value}")


def _unit_interval(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ConfigError(f"{name}: must be in (0, 1] (a fraction of the limit), got {value}")
