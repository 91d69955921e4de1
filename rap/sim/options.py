"""`python3 -m rap.sim`'s options: their help, their parser, and the validated Options.

Raw option text (from argparse here, or from an invoke task) goes through
``parse_options``; a bad value is a SimOptionError (exit 2) whose one line
names the option and what to give instead, raised before anything runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rap.config import FIELDS
from rap.errors import OptionError
from rap.options import count, new_or_empty_folder, number, one_of, with_defaults
from rap.sim.model import Workload
from rap.sim.scenarios import POLICIES, QUICK_LARGE, LargeShape

SCENARIO_NAMES = ("bench", "large")
VIEW_NODES_DEFAULT: int = FIELDS["view_nodes"].default  # RAP_VIEW_NODES's, from rap/schemas/rap-config.json
MAX_NODES = 5000
MAX_AFTER_S = 3600.0
# Measured apart from the validated figures (rap.sim.calibrate; docs/scale.md, "The simulator"):
# `python3 -m rap.sim --calibrate` on this machine, the backend on the loopback and
# `invoke bench --scenarios balanced --policies round-robin,rap --reps 1`.
HTTP_CPU_MS = 0.40
OVERHEAD_MS = 1.79


class SimOptionError(OptionError):
    """A bad option of python3 -m rap.sim; the message names it and the fix."""


@dataclass(frozen=True)
class Options:
    scenarios: tuple[str, ...] = SCENARIO_NAMES
    policies: tuple[str, ...] = tuple(POLICIES)
    quick: bool = False
    seed: int = 1
    out: Path | None = None
    large: LargeShape = LargeShape()
    nodes_given: bool = False  # --nodes/--overloaded were given (they apply to --quick's large run too)
    workload: Workload = field(default_factory=lambda: Workload(cpu_ms=0.0, http_cpu_ms=HTTP_CPU_MS,
                                                                overhead_ms=OVERHEAD_MS))
    validate: Path | None = None
    calibrate: Path | None = None
    view_nodes: int = VIEW_NODES_DEFAULT  # the bounded view of the rap-view labels
    started: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))

    def out_dir(self) -> Path:
        return self.out if self.out is not None else Path("results") / f"sim-{self.started}"


def option_help() -> dict[str, str]:
    d, shape = Options(), LargeShape()
    return with_defaults({
        "quick": f"a small, fast run for CI (under 30 s): the bench scenario with `invoke bench --quick`'s steps "
                 f"and a large cluster of {QUICK_LARGE.nodes} nodes ({QUICK_LARGE.overloaded} overloaded) for "
                 f"{QUICK_LARGE.warmup_s + QUICK_LARGE.after_s:g} s",
        "scenarios": f"comma-separated subset of {','.join(SCENARIO_NAMES)}: bench is rap/bench/scenarios.toml's "
                     "3-node 'rates' scenario, large the many-node one",
        "policies": f"comma-separated subset of {','.join(POLICIES)} (rap is classic RAP, rap-adaptive the "
                    "adaptive mode; the project's own policy code, one instance per node; the -view labels read "
                    "through the aggregated monitor's bounded view of --view-nodes nodes per Service)",
        "view_nodes": "nodes per Service in the bounded view of the rap-view and rap-adaptive-view policies "
                      "(RAP_VIEW_NODES; 0 reads every node)",
        "seed": "seed of every random choice (arrivals, RTT jitter, shuffles, monitor phases); the same for "
                "every policy",
        "out": "results folder (default results/sim-<timestamp>); must be new or empty",
        "nodes": "nodes of the large scenario",
        "overloaded": "client nodes of the large scenario that step to twice what their pods take at the "
                      "threshold; fewer than --nodes",
        "after": "seconds the large scenario runs after its load step",
        "http_cpu_ms": "the backend's own CPU per request on top of the scenario's cpu_ms (measured by --calibrate)",
        "overhead_ms": "latency of a request's local path outside the pod's CPU (measured by --calibrate)",
        "validate": "an `invoke bench` results folder with the rates scenario: simulate its shape and load and "
                    "compare p50s (within 25%, else MISSED and exit 1)",
        "calibrate": "an `invoke bench` results folder with the balanced scenario (rap): measure --http-cpu-ms "
                     "and --overhead-ms, write calibration.json, simulate nothing",
    }, {"seed": d.seed, "nodes": shape.nodes, "overloaded": shape.overloaded, "after": shape.after_s,
        "http_cpu_ms": HTTP_CPU_MS, "overhead_ms": OVERHEAD_MS, "scenarios": SCENARIO_NAMES,
        "view_nodes": VIEW_NODES_DEFAULT,
        "policies": tuple(POLICIES)})


def _names(option: str, text: str | None, choices) -> tuple[str, ...]:
    if text is None or text.strip() in ("", "all"):
        return tuple(choices)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise SimOptionError(f"{option}: unknown {', '.join(unknown) or '(empty)'}; choose from "
                             f"{one_of(tuple(choices))} (comma-separated)")
    if len(set(names)) != len(names):
        raise SimOptionError(f"{option}: {text!r} names one twice")
    return tuple(n for n in choices if n in names)


def _results(option: str, path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not (p / "summary.json").is_file():
        raise SimOptionError(f"{option}: {path} has no summary.json; give the folder an `invoke bench` run wrote "
                             "(results/<timestamp>)")
    return p


def _non_negative(option: str, text, default: float) -> float:
    value = number(option, text, float, SimOptionError, default)
    if not 0 <= value < 1e6:
        raise SimOptionError(f"{option}: must be >= 0 ms (and below 1e6), got {value:g}")
    return value


def parse_options(*, quick=False, scenarios=None, policies=None, seed=None, out=None, nodes=None,
                  overloaded=None, after=None, http_cpu_ms=None, overhead_ms=None, validate=None,
                  calibrate=None, view_nodes=None) -> Options:
    """Raw option text -> Options (see option_help)."""
    shape = LargeShape()
    n = count("--nodes", nodes, shape.nodes, lo=2, hi=MAX_NODES, error=SimOptionError)
    k = count("--overloaded", overloaded, min(shape.overloaded, n - 1), lo=0, error=SimOptionError)
    if k >= n:
        raise SimOptionError(f"--overloaded: must be fewer than --nodes ({n}), got {k}")
    after_s = number("--after", after, float, SimOptionError, shape.after_s)
    if not 0 < after_s <= MAX_AFTER_S:
        raise SimOptionError(f"--after: must be in (0, {MAX_AFTER_S:g}] seconds, got {after_s:g}")
    if validate is not None and calibrate is not None:
        raise SimOptionError("--validate and --calibrate: give one of them (calibrate first, then validate)")
    workload = Workload(cpu_ms=0.0, http_cpu_ms=_non_negative("--http-cpu-ms", http_cpu_ms, HTTP_CPU_MS),
                        overhead_ms=_non_negative("--overhead-ms", overhead_ms, OVERHEAD_MS))
    return Options(scenarios=_names("--scenarios", scenarios, SCENARIO_NAMES),
                   policies=_names("--policies", policies, POLICIES), quick=bool(quick),
                   seed=count("--seed", seed, 1, lo=0, error=SimOptionError),
                   out=None if out is None else Path(new_or_empty_folder("--out", out, SimOptionError)),
                   large=replace(shape, nodes=n, overloaded=k, after_s=after_s),
                   nodes_given=nodes is not None or overloaded is not None, workload=workload,
                   validate=_results("--validate", validate), calibrate=_results("--calibrate", calibrate),
                   view_nodes=count("--view-nodes", view_nodes, VIEW_NODES_DEFAULT, lo=0,
                                    hi=FIELDS["view_nodes"].max, error=SimOptionError))


def parser() -> argparse.ArgumentParser:
    from rap.sim import __doc__ as doc

    p = argparse.ArgumentParser(prog="python3 -m rap.sim", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="docs/scale.md, \"The simulator\", says what is modelled and what is not.")
    helps = option_help()
    p.add_argument("--quick", action="store_true", help=helps["quick"])
    for name in ("scenarios", "policies", "seed", "out", "nodes", "overloaded", "after", "http_cpu_ms",
                 "overhead_ms", "validate", "calibrate", "view_nodes"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, metavar={"http_cpu_ms": "MS", "overhead_ms": "MS", "out": "DIR", "validate": "RESULTS",
                                                 "calibrate": "RESULTS", "after": "SECONDS", "view_nodes": "N"}.get(name, name.upper()),
                       help=helps[name].replace("%", "%%"))
    return p


def parse_args(argv: list[str] | None = None) -> Options:
    return parse_options(**vars(parser().parse_args(argv)))
