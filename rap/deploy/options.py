"""The options of `invoke deploy` / `rollback`, checked before anything is touched.

RAP's options (``--mode``, ``--period`` ... ``--rtt-port``), the environment variable
each sets in the kube-proxy container, their defaults, ranges and help all
come from rap/schemas/rap-config.json through rap.config; ``--image``,
``--aggregator-image`` (the aggregator's image, required with ``--monitor
aggregator`` and refused without it) and ``--timeout`` are deploy's own. This module imports nothing heavy, so
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
AGGREGATOR = "aggregator"  # the monitor choice that needs rap.aggregator running (the table's other is "node")

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
    aggregator_image: str | None = None  # set exactly when monitor.monitor is AGGREGATOR

    @property
    def rtt_port(self) -> int:
        return self.monitor.rtt_port

    @property
    def aggregated(self) -> bool:
        return self.monitor.monitor == AGGREGATOR


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


# option -> (what it names, an example, where one comes from): the one text of each image's errors.
# The toolkit builds no aggregator image: any image with python3 and this package installed will do.
_IMAGES = {
    "--image": ("the RAP kube-proxy image", "registry.example/rap/kube-proxy:v1.21.14-rap",
                "; see `invoke build-proxy --image`"),
    "--aggregator-image": ("an image that holds python3 and the rap package (it runs `python3 -m rap.aggregator`)",
                           "registry.example/rap/aggregator:v1", ""),
}


def check_image(image: Any, option: str = "--image") -> str:
    """NAME:TAG (the registry may carry a port; NAME@sha256:... is accepted too)."""
    what, example, source = _IMAGES[option]
    if not image or not isinstance(image, str):
        raise DeployError(f"{option}: give {what} as NAME:TAG (e.g. {example}{source})")
    image = image.strip()
    name, _, digest = image.partition("@")
    if digest:
        ok = bool(re.fullmatch(r"sha256:[0-9a-f]{64}", digest)) and bool(name)
    else:
        name, sep, tag = image.rpartition(":")
        ok = bool(sep and name and tag) and "/" not in tag
    if not ok or re.search(r"\s", image):
        raise DeployError(f"{option} {image!r}: give NAME:TAG, e.g. {example}")
    return image


def check_aggregator_image(image: Any, monitor: str) -> str | None:
    """The aggregator's image: required with --monitor aggregator, refused with the per-node monitor."""
    if monitor != AGGREGATOR:
        if image is not None:
            raise DeployError(f"--aggregator-image: only with --monitor {AGGREGATOR} (--monitor {monitor} "
                              f"runs no aggregator); drop it, or add --monitor {AGGREGATOR}")
        return None
    if image is None:
        raise DeployError(f"--aggregator-image: required with --monitor {AGGREGATOR}: give "
                          f"{_IMAGES['--aggregator-image'][0]} as NAME:TAG, or deploy with --monitor node")
    return check_image(image, "--aggregator-image")


def parse_options(image: Any, *, timeout: Any = None, aggregator_image: Any = None, **rap: Any) -> DeployOptions:
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
    return DeployOptions(image=image, rap=config, monitor=monitor_config, timeout_s=parse_timeout(timeout),
                         aggregator_image=check_aggregator_image(aggregator_image, monitor_config.monitor))


def parse_timeout(timeout: Any) -> float:
    """--timeout in seconds, > 0 (default 300)."""
    if timeout is None:
        return DEFAULT_TIMEOUT_S
    timeout_s = _number("--timeout", timeout)
    if not 0 < timeout_s < float("inf"):
        raise DeployError(f"--timeout: must be > 0 seconds, got {timeout!r}")
    return timeout_s
