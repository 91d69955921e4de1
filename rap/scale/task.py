"""`invoke scale`: RAP at scale, both ways (docs/scale.md).

Two parts, run in this order: the simulator of RAP's decisions over hundreds of
nodes (rap.sim: latency, the spread of forwarded traffic, settling) and the
measurement of the monitors' cost on a KWOK-simulated cluster (rap.scale's
harness: a real local cluster, root). ``part`` picks one; both parse their
options before anything runs, so a bad value of either stops the task at once.
Results go under one folder: ``<out>/sim`` and ``<out>/kwok``.
"""

from __future__ import annotations

import time
from pathlib import Path

from rap.errors import OptionError
from rap.options import new_or_empty_folder, one_of, with_defaults

PARTS = ("both", "sim", "kwok")


class ScaleTaskError(OptionError):
    """A bad option of `invoke scale`; the message names it and the fix."""


# The simulator's large scenario (rap.sim.scenarios' LargeShape and QUICK_LARGE), written out because that
# module imports numpy and SimPy, too heavy for `invoke --list`; a unit test holds the two together.
SIM_DEFAULTS = {"sim_nodes": (500, 100), "overloaded": (50, 10)}  # (full, --quick)


def option_help() -> dict[str, str]:
    from rap.scale.options import MONITORS, QUICK, ScaleOptions

    full, quick = ",".join(map(str, ScaleOptions().nodes)), ",".join(map(str, QUICK["nodes"]))
    sim = {k: f"{a} (--quick: {b})" for k, (a, b) in SIM_DEFAULTS.items()}
    return with_defaults({
        "quick": "the short form for CI: the simulator's --quick and the KWOK measurement's --quick",
        "part": f"what to run: {one_of(PARTS)} (sim: the simulator of RAP's decisions; kwok: the monitors' cost "
                "on a KWOK-simulated cluster, needs root and one local cluster at a time)",
        "nodes": "simulated (KWOK) node counts of the cost measurement, comma-separated, ascending",
        "monitor": f"what runs on the real nodes of the cost measurement, comma-separated: {one_of(MONITORS)} "
                   "(stock: kube-proxy without RAP, the reference)",
        "sim_nodes": "nodes of the simulator's large scenario",
        "overloaded": "client nodes overloaded in the simulator's large scenario (fewer than --sim-nodes)",
        "seed": "seed of both parts (synthetic metrics, simulated arrivals)",
        "out": "results folder; the simulator writes <out>/sim, the measurement <out>/kwok; must be new or empty",
    }, {"part": PARTS[0], "nodes": f"{full} (--quick: {quick})", "monitor": ",".join(MONITORS), **sim,
        "seed": 1, "out": "results/scale-<timestamp>/"})


def parse(*, quick=False, part=None, nodes=None, monitor=None, sim_nodes=None, overloaded=None, seed=None,
          out=None):
    """Raw option text -> (part, sim Options or None, kwok ScaleOptions or None, out folder)."""
    from rap.scale.options import parse_options as kwok_options
    from rap.sim.options import SimOptionError, parse_options as sim_options

    part = part or "both"
    if part not in PARTS:
        raise ScaleTaskError(f"--part: {part!r} is not one of {one_of(PARTS)}")
    root = Path(new_or_empty_folder("--out", out, ScaleTaskError) or Path("results")
                / f"scale-{time.strftime('%Y%m%d-%H%M%S')}")
    sim = kwok = None
    if part in ("both", "sim"):
        try:
            sim = sim_options(quick=quick, seed=seed, nodes=sim_nodes, overloaded=overloaded,
                              out=str(root / "sim"))
        except SimOptionError as exc:  # its --nodes is this task's --sim-nodes
            raise ScaleTaskError(str(exc).replace("--nodes", "--sim-nodes")) from None
    if part in ("both", "kwok"):
        kwok = kwok_options(quick=quick, nodes=nodes, monitor=monitor, seed=seed, out=str(root / "kwok"))
    return part, sim, kwok, root


def run(**raw) -> int:
    """What ``invoke scale`` calls: the parts asked for, their tables printed; the exit code."""
    from rap.scale import cli
    from rap.sim import run as sim_run

    part, sim, kwok, root = parse(**raw)
    code = 0
    if sim is not None:
        print(f"[scale] part 1/{2 if kwok else 1}: the simulator of RAP's decisions (rap.sim)")
        code = sim_run.run(sim)
    if kwok is not None:
        print(f"[scale] part {2 if sim else 1}/{2 if sim else 1}: the monitors' cost on a KWOK-simulated cluster "
              "(rap.scale)")
        cli.run_options(kwok)
    print(f"[scale] done: {root}")
    return code
