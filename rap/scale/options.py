"""The scale measurement's options: their help, their defaults and their parser (``parse_options``).

The CLI (rap.scale.cli) and the invoke task hand the raw option text here
and get a validated ``ScaleOptions`` back; a bad option is one
``ScaleOptionError`` line naming the option and the fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rap.config import FIELDS, ConfigError
from rap.errors import OptionError
from rap.localcluster.config import MAX_NODES as MAX_RAP_NODES
from rap.options import count, new_or_empty_folder, number, one_of, with_defaults

# Simulated nodes at most (their names have four digits; rap.scale.fakecluster numbers them 1..MAX_NODES).
# Stated here, not there, so that this module imports nothing heavy: tasks.py builds `invoke scale`'s help
# from it when `invoke --list` runs.
MAX_NODES = 5000
# "stock" is no RAP monitor: kube-proxy v1.21.14 itself, the reference a RAP process's CPU and memory
# are read against (kube-proxy watches, and costs a node little while nothing changes).
MONITORS = ("stock", "node", "aggregator", "aggregator-all")


class ScaleOptionError(OptionError):
    """A bad scale option, found before anything is started. Exit 2."""


@dataclass(frozen=True)
class ScaleOptions:
    nodes: tuple[int, ...] = (100, 300, 1000)
    pods_per_node: int = 20
    services: int = 10
    monitors: tuple[str, ...] = ("node",)
    rap_nodes: int = 3
    period_s: float = 5.0
    window_s: float = 60.0
    warmup_s: float = 30.0
    seed: int = 1
    out: Path | None = None

    def out_dir(self) -> Path:
        return self.out or Path("results") / f"scale-{time.strftime('%Y%m%d-%H%M%S')}"


QUICK = dict(nodes=(50,), pods_per_node=20, services=5, period_s=2.0, window_s=20.0, warmup_s=12.0)


def option_help() -> dict[str, str]:
    d = ScaleOptions()
    defaults = {"nodes": d.nodes, "pods_per_node": d.pods_per_node, "services": d.services,
                "monitor": ",".join(MONITORS), "rap_nodes": d.rap_nodes, "period": d.period_s,
                "window": d.window_s, "warmup": d.warmup_s, "seed": d.seed, "out": "results/scale-<timestamp>/"}
    return with_defaults({
        "nodes": f"simulated (KWOK) node counts to measure at, comma-separated, ascending, each 1..{MAX_NODES}; "
                 "the cluster grows from one to the next",
        "pods_per_node": "simulated pods on each simulated node (Running, with limits, in the Services' Endpoints)",
        "services": "Services the simulated pods are spread over (each with its Endpoints)",
        "monitor": f"what runs on the real nodes, comma-separated: {one_of(MONITORS)} (stock: kube-proxy "
                   "without RAP, the reference; node: rap.go's per-node monitor, lists everything every "
                   "period; aggregator: RAP_MONITOR=aggregator with one python3 -m rap.aggregator process, each kube-proxy "
                   "reading its bounded view of RAP_VIEW_NODES' default; aggregator-all: the same reading every "
                   "node's record, RAP_VIEW_NODES=0)",
        "rap_nodes": f"real nodes running a real RAP kube-proxy (1..{MAX_RAP_NODES}); figures are per RAP node",
        "period": "RAP's monitor period in seconds (RAP_PERIOD_S); per-period figures use it",
        "window": "seconds of each measured window (and of the baseline window without RAP processes)",
        "warmup": "seconds between starting RAP processes and measuring (their start-up lists are not steady state)",
        "seed": "seed of the synthetic pod and node metrics (same seed, same values)",
        "out": "folder for scale.md and scale.json; must not exist or be empty",
        "quick": "a short run for CI: 50 simulated nodes, period 2 s, 20 s windows, 12 s warm-up "
                 "(options given as well override it)",
    }, defaults)


def _nodes(text) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        text = ",".join(map(str, text))
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ScaleOptionError("--nodes: give one or more counts, e.g. --nodes 100,300,1000")
    values = tuple(count("--nodes", p, 0, 1, MAX_NODES, ScaleOptionError) for p in parts)
    if list(values) != sorted(set(values)):
        raise ScaleOptionError(f"--nodes: {text!r} must be ascending without repeats (the cluster only grows), "
                               "e.g. 100,300,1000")
    return values


def _monitors(text) -> tuple[str, ...]:
    if text is None:
        return MONITORS
    if isinstance(text, (list, tuple)):
        text = ",".join(text)
    names = tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    if not names:
        raise ScaleOptionError(f"--monitor: give one or more of {one_of(MONITORS)}")
    for name in names:
        if name not in MONITORS:
            raise ScaleOptionError(f"--monitor: {name!r} is not a monitor; use {one_of(MONITORS)}")
    return names


def parse_options(*, nodes=None, pods_per_node=None, services=None, monitor=None, rap_nodes=None, period=None,
                  window=None, warmup=None, seed=None, out=None, quick=False) -> ScaleOptions:
    """Raw option text -> ScaleOptions; ``quick`` sets the short run's values under the ones given."""
    base = ScaleOptions(**QUICK) if quick else ScaleOptions()
    period_s = number("--period", period, float, ScaleOptionError, base.period_s)
    try:
        FIELDS["period_s"].check(period_s)
    except ConfigError as exc:
        raise ScaleOptionError(f"--period: {exc.reason}") from None
    window_s = number("--window", window, float, ScaleOptionError, base.window_s)
    if not 2 * period_s <= window_s <= 3600:
        raise ScaleOptionError(f"--window: must be 2 periods ({2 * period_s:g}s) .. 3600s, got {window_s:g}")
    warmup_s = number("--warmup", warmup, float, ScaleOptionError, base.warmup_s)
    if not 2 * period_s <= warmup_s <= 3600:
        raise ScaleOptionError(f"--warmup: must be 2 periods ({2 * period_s:g}s) .. 3600s, got {warmup_s:g}")
    return ScaleOptions(
        nodes=base.nodes if nodes is None else _nodes(nodes),
        pods_per_node=count("--pods-per-node", pods_per_node, base.pods_per_node, 0, 110, ScaleOptionError),
        services=count("--services", services, base.services, 1, 200, ScaleOptionError),
        monitors=_monitors(monitor),
        rap_nodes=count("--rap-nodes", rap_nodes, base.rap_nodes, 1, MAX_RAP_NODES, ScaleOptionError),
        period_s=period_s, window_s=window_s, warmup_s=warmup_s,
        seed=count("--seed", seed, base.seed, 0, None, ScaleOptionError),
        out=Path(new_or_empty_folder("--out", out, ScaleOptionError)) if out else None,
    )
