"""Drives the simulator: every scenario once per policy, same seed, then the report, plots and validation.

    python3 -m rap.sim [--quick] [--scenarios bench,large] [--policies ...] [--out DIR]
    python3 -m rap.sim --validate results/BENCH_RUN      # the 3-node scenario against a measured run
    python3 -m rap.sim --calibrate results/BALANCED_RUN  # the model's two measured parameters

``simulate`` is one run: one real policy object per node (rap.policies.make_policy,
classic and adaptive RAP through RapConfig(mode=...)), the cluster model
(model.py) and the monitors (monitor.py) in one SimPy environment.
``run(options)`` is the whole job and returns the exit code; ``main(argv)``
parses the command line first (an invoke task calls ``run`` with
``rap.sim.options.parse_options(...)``'s result).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rap.config import RapConfig
from rap.errors import UserError
from rap.policies import Policy, make_policy
from rap.sim import monitor
from rap.sim.model import ClusterSim, Samples
from rap.sim.options import Options
from rap.sim.scenarios import POLICIES, QUICK_LARGE, VIEW_LABELS, SimScenario, from_bench, large
from rap.status import Status


@dataclass
class RunResult:
    scenario: SimScenario
    label: str
    samples: Samples
    seconds: float  # wall clock
    snapshots: int
    scrapes: int


def make_policies(scenario: SimScenario, label: str, seed: int) -> list[Policy]:
    """One policy per node, as every node runs its own kube-proxy; RAP reads the scenario's period."""
    name, mode = POLICIES[label]
    config = RapConfig(mode=mode or RapConfig().mode, period_s=scenario.cadence.period_s)
    return [make_policy(name, local_node=node, config=config, seed=seed * 7919 + i)
            for i, node in enumerate(scenario.cluster.nodes)]


def simulate(scenario: SimScenario, label: str, seed: int = 1, view_nodes: int = 0) -> RunResult:
    """One run; a label of VIEW_LABELS reads through a bounded view of ``view_nodes`` nodes per Service."""
    t0 = time.monotonic()
    sim = ClusterSim(scenario.cluster, list(scenario.clients), scenario.workload,
                     make_policies(scenario, label, seed), label, end_s=scenario.end_s, seed=seed)
    metrics, monitors = monitor.start(sim, scenario.cadence, seed, view_nodes if label in VIEW_LABELS else 0)
    samples = sim.run()
    return RunResult(scenario, label, samples, time.monotonic() - t0, monitors.snapshots, metrics.scrapes)


def scenarios_for(opts: Options) -> list[SimScenario]:
    out = []
    for name in opts.scenarios:
        if name == "bench":
            out.append(from_bench(workload=opts.workload, quick=opts.quick))
        elif name == "large":
            shape = QUICK_LARGE if opts.quick else opts.large
            if opts.quick and opts.nodes_given:
                shape = replace(shape, nodes=opts.large.nodes, overloaded=opts.large.overloaded)
            out.append(large(shape, opts.workload, seed=opts.seed))
    return out


def run(opts: Options, status: Status | None = None) -> int:
    """The whole job of ``opts``: 0 when it ran (and, with --validate, every compared p50 was within 25%)."""
    from rap.sim import report, validate

    status = status or Status("sim")
    out = opts.out_dir()
    if opts.calibrate is not None:
        from rap.sim.calibrate import calibrate

        calibrate(opts.calibrate, out, say=status.say)
        status.say(f"calibration: {out / 'calibration.json'}")
        return 0
    scenarios = scenarios_for(opts)
    measured = None
    if opts.validate is not None:
        measured = validate.read_summary(opts.validate, "--validate")
        scenarios = [validate.scenario_of(measured, opts.workload)] + [s for s in scenarios
                                                                       if s.bench is None]
    out.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    status.say(f"{len(scenarios)} scenario(s) x {len(opts.policies)} policies, seed {opts.seed}; results in {out}")
    with status.counting("runs", len(scenarios) * len(opts.policies)) as counter:
        for s in scenarios:
            for label in opts.policies:
                counter.note(f"{s.name} {label}: {len(s.cluster.nodes)} nodes, {s.end_s:g} s simulated")
                r = simulate(s, label, opts.seed, opts.view_nodes)
                results.append(r)
                counter.advance(f"{s.name} {label}: {len(r.samples)} requests in {r.seconds:.1f} s", eta=True)
    doc = report.summarize(results, opts)
    if measured is not None:
        doc["validation"] = validate.compare(doc, measured, opts.validate)
    pngs = []
    try:
        from rap.sim import plots

        pngs = plots.plots(results, out)
    except ImportError as exc:  # matplotlib is a dependency; say so rather than lose the run
        status.warn(f"no plots: {exc}")
    report.write(doc, pngs, out)
    print(report.screen(doc, out))
    if measured is not None and not doc["validation"]["within"]:
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from rap.sim.options import parse_args

    try:
        return run(parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
