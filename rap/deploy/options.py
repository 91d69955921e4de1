"""The options of `invoke deploy` / `rollback`, checked before anything is touched.

RAP's options (``--mode``, ``--period`` ... ``--rtt-port``), the environment variable
each sets in the kube-proxy container, their defaults, ranges and help all
come from rap/schemas/rap-config.json through rap.config; only ``--image`` and
``--timeout`` are deploy's own. This module imports nothing heavy, so
tasks.py can build the deploy task's help from it at load time.

Not here: what deploy changes in the cluster (spec.py, rollout.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rap.config import FIELDS, MONITOR_FIELDS, ConfigError, MonitorConfig, RapConfig
from rap.errors import UserError

DEFAULT_TIMEOUT_S = 300.0

# table field -> (task option, environment variable rap.go reads)
OPTIONS = {f.name: (f"--{f.option}", f.env) for f in FIELDS.values()}
_BY_PARAM = {f.param: f for f in FIELDS.values()}


class DeployError(UserError, RuntimeError):
    """A failure of deploy or rollback; the message names the thing and the fix."""


@dataclass(frozen=True)
class DeployOptions:
    image: str
    rap: RapConfig = field(default_factory=RapConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def rtt_port(self) -> int:
        return self.monitor.rtt_port


def option_help() -> dict[str, str]:
    """The deploy task's help of each RAP option, keyed by its parameter: 'RAP_W_CPU: weight ...; >= 0 (default 0.5)'."""
    return {f.param: f"{f.env}: {f.describe()}" for f in FIELDS.values()}


def _number(option: str, value: Any) -> float:
    if isinstance(value, bool):
        raise DeployError(f"{option}: must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DeployError(f"{option}: must be a number, got {value!r}") from None


def _value(f, value: Any) -> float | str:
    """A choice stays text (RapConfig checks it against the table's choices); the rest are numbers."""
    return value if f.choices else _number(f"--{f.option}", value)


def check_image(image: Any) -> str:
    """NAME:TAG (the registry may carry a port; NAME@sha256:... is accepted too)."""
    if not image or not isinstance(image, str):
        raise DeployError("--image: give the RAP kube-proxy image as NAME:TAG "
                          "(e.g. registry.example/rap/kube-proxy:v1.21.14-rap; see `invoke build-proxy --image`)")
    image = image.strip()
    name, _, digest = image.partition("@")
    if digest:
        ok = bool(re.fullmatch(r"sha256:[0-9a-f]{64}", digest)) and bool(name)
    else:
        name, sep, tag = image.rpartition(":")
        ok = bool(sep and name and tag) and "/" not in tag
    if not ok or re.search(r"\s", image):
        raise DeployError(f"--image {image!r}: give NAME:TAG, e.g. registry.example/rap/kube-proxy:v1.21.14-rap")
    return image


def parse_options(image: Any, *, timeout: Any = None, **rap: Any) -> DeployOptions:
    """Check every deploy option; a bad one is a DeployError naming it (--option).

    ``rap`` holds the table's options by parameter name (``cpu_threshold="0.7"``,
    ``rtt_port="8080"``); None means "not given", so the table's default.
    """
    unknown = sorted(set(rap) - set(_BY_PARAM))
    if unknown:
        raise TypeError(f"parse_options: unknown RAP option {unknown[0]!r}; known: {', '.join(_BY_PARAM)}")
    image = check_image(image)
    values = {_BY_PARAM[p].name: _value(_BY_PARAM[p], v) for p, v in rap.items() if v is not None}
    monitor = {f.name: values.pop(f.name) for f in MONITOR_FIELDS if f.name in values}
    try:
        config, monitor_config = RapConfig(**values), MonitorConfig(**monitor)
    except ConfigError as exc:
        raise DeployError(f"{' + '.join(OPTIONS[f][0] for f in exc.fields)}: {exc.reason}") from None
    return DeployOptions(image=image, rap=config, monitor=monitor_config, timeout_s=parse_timeout(timeout))


def parse_timeout(timeout: Any) -> float:
    """--timeout in seconds, > 0 (default 300)."""
    if timeout is None:
        return DEFAULT_TIMEOUT_S
    timeout_s = _number("--timeout", timeout)
    if not 0 < timeout_s < float("inf"):
        raise DeployError(f"--timeout: must be > 0 seconds, got {timeout!r}")
    return timeout_s
