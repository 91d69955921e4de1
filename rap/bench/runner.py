"""Interleaved, repeated runs of every scenario against every policy.

For each cluster shape: one cluster (``target.cluster``), then for rep 1..N
every policy in a rotated order (rep 1: rr, rap, lr; rep 2: rap, lr, rr; ...),
each run being: switch the proxy (skipped when it already runs), warm up
(RAP needs a period or two of fresh metrics), then the load (one closed-loop
step, or one open-loop step per rate). A scenario's overload runs through
all its runs, so every policy meets the same steady saturation. The next
scenario on the same cluster starts with the policy that ran last. Every sample is appended to the raw
samples file as it arrives, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rap.bench import stats
from rap.bench.progress import Progress
from rap.bench.scenarios import Scenario, estimate_seconds, policy_order


@dataclass
class RunRecord:
    """One step of one run: scenario, policy, rep, rate; its measures."""

    scenario: str
    policy: str
    rep: int
    rate: float | None
    order: int  # position of the policy within its rep (0 = first)
    started: float
    measures: dict = field(default_factory=dict)
    # the step's requests as arrays, for the report's confidence intervals; not in summary.json
    outcomes: stats.Outcomes | None = field(default=None, repr=False, compare=False)
    # per client node, its requests and how many each node served (stats.served)
    served: dict = field(default_factory=dict, repr=False, compare=False)

    def key(self) -> tuple:
        return (self.scenario, self.policy, self.rate)


@dataclass
class BenchResult:
    records: list[RunRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def run(target, scenarios: list[Scenario], reps: int, out_dir: Path, progress: Progress | None = None,
        policies: list[str] | None = None) -> BenchResult:
    """Run everything; raw samples to out_dir/samples.jsonl. Ctrl-C stops early, cluster torn down."""
    policies = policies or list(target.policies)
    total = sum(reps * len(policies) for _ in scenarios)
    progress = progress or Progress(total, estimate_seconds(scenarios, reps))
    result = BenchResult()
    t0 = time.monotonic()
    groups: list[list[Scenario]] = []
    for s in scenarios:
        if groups and groups[-1][0].shape_key() == s.shape_key():
            groups[-1].append(s)
        else:
            groups.append([s])
    with open(out_dir / "samples.jsonl", "w") as raw:
        try:
            for group in groups:
                names = ", ".join(s.name for s in group)
                progress.say(f"cluster for {names}: starting ({_shape_text(group[0])})")
                t_up = time.monotonic()
                try:
                    with target.cluster(group[0], say=progress.say):
                        progress.say(f"cluster for {names}: up in {time.monotonic() - t_up:.0f}s")
                        rotation = 0
                        for s in group:
                            last = _scenario(target, s, reps, policies, raw, result, progress, rotation)
                            rotation = next_rotation(last, len(policies))
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # noqa: BLE001 - the cluster of this group failed; try the next
                    result.failures.append(f"{names}: cluster: {type(exc).__name__}: {exc}")
                    progress.say(f"cluster for {names}: FAILED: {exc}")
                    progress.done += sum(reps * len(policies) for _ in group)
        except KeyboardInterrupt:
            result.interrupted = True
            progress.say("interrupted: the cluster was torn down; writing what was measured so far")
    result.seconds = time.monotonic() - t0
    return result


def _shape_text(s: Scenario) -> str:
    pods = "/".join(str(s.pods_on(i)) for i in range(1, s.nodes + 1))
    rtt = ", ".join(f"{a}-{b} {ms:g}ms" for a, b, ms in s.rtt_ms) or "no added RTT"
    return f"{s.nodes} nodes, pods {pods}, {s.pod_cpu:g} CPU each, {rtt}"


def _scenario(target, s: Scenario, reps: int, policies: list[str], raw: IO, result: BenchResult,
              progress: Progress, first_rotation: int = 0) -> int:
    """All reps of one scenario; the rotation its last rep used."""
    rotation = first_rotation
    check_delay = getattr(target, "check_delay", None)  # a target that applies RTTs checks them
    if check_delay is not None:
        check_delay(s)  # nothing is measured on a cluster whose delay is missing
    with target.overloaded(s, seconds=reps * len(policies) * (s.seconds_per_run() + 15) + 60):
        for rep in range(reps):
            rotation = first_rotation + rep
            for order, policy in enumerate(policy_order(rotation, policies)):
                label = f"{s.name} rep {rep + 1}/{reps} {policy}"
                progress.start_run(label)
                try:
                    records = _one_run(target, s, policy, rep, order, raw)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - one failed run is reported, the rest go on
                    result.failures.append(f"{label}: {type(exc).__name__}: {exc}")
                    progress.end_run(f"{label}: FAILED ({exc})")
                    continue
                result.records.extend(records)
                progress.end_run(f"{label}: " + "; ".join(_brief(r) for r in records))
    return rotation


def next_rotation(last: int, policies: int) -> int:
    """The rotation whose first policy is the last one run, so the next scenario on the same
    cluster starts without a proxy switch (rotation k runs policies[k], policies[k+1], ...)."""
    return (last + policies - 1) % policies


def _one_run(target, s: Scenario, policy: str, rep: int, order: int, raw: IO) -> list[RunRecord]:
    target.switch(policy)
    records = []
    time.sleep(s.warmup_s)
    for rate in s.steps():
        started = time.time()
        samples = target.load(s, rate)
        for d in samples:
            d.update(scenario=s.name, policy=policy, rep=rep + 1, rate=rate)
            raw.write(json.dumps(d) + "\n")
        raw.flush()
        outcomes = stats.outcomes(samples, s.duration_s, s.timeout_s, closed=s.mode == "closed")
        records.append(RunRecord(s.name, policy, rep + 1, rate, order, started, stats.measures(outcomes),
                                 outcomes, stats.served(samples)))
    return records


def _brief(r: RunRecord) -> str:
    m = r.measures
    rate = f"{r.rate:g}/s: " if r.rate is not None else ""
    p50 = f"{m['p50_ms']:.0f}" if m["p50_ms"] is not None else "-"
    local = f"{m['local_share']:.0%}" if m["local_share"] is not None else "-"
    err = f", {m['failed']} failed ({m['error_rate']:.1%})" if m["error_rate"] else ""
    return f"{rate}{m['throughput_rps']:.0f} req/s, p50 {p50} ms, local {local}{err}"
