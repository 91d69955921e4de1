"""`invoke bench`: the paper's experiment, RAP against round robin and against what users run instead.

    from rap.bench import Options, bench
    out_dir, doc = bench(Options(scenarios=["geo"], reps=3))

Modules, one concern each: scenarios (the experiments as data, validation),
runner (interleaved, repeated runs), stats (percentiles, medians, spread,
ratios), ci (95% intervals of ratios), compare (RAP against the best peer,
metric by metric, WIN/LOSS/TIE), report (summary.json, report.md, the
end-of-run screen), plots,
target (local cluster or kubeconfig), kube (the workload on a real cluster),
overload (the co-located workload that saturates pods), progress.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from rap.bench.scenarios import Options, ScenarioError, estimate_seconds, plan
from rap.bench.target import TargetError
from rap.errors import UserError
from rap.options import new_or_empty_folder

__all__ = ["Options", "bench", "BenchError", "default_out_dir"]


class BenchError(UserError, RuntimeError):
    """A benchmark that cannot start; one message naming the problem and the fix."""

    exit_code = 2  # nothing ran: like a bad option


def default_out_dir(now: datetime | None = None) -> Path:
    now = now or datetime.now()
    return Path("results") / now.strftime("%Y%m%d-%H%M%S")


def _sigterm_as_interrupt():
    """SIGTERM (a CI timeout, `kill`) tears the cluster down like Ctrl-C does; the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def bench(opts: Options, say=print, **kube_options) -> tuple[Path, dict]:
    """Run the benchmark; (results directory, summary document). Raises BenchError on bad input."""
    from rap.bench import report, runner, target
    from rap.bench.progress import Progress

    try:
        scenarios = plan(opts.scenarios, quick=opts.quick, duration=opts.duration)
        tgt = target.parse(opts.target, **kube_options)
        tgt.check()
    except (ScenarioError, TargetError) as exc:
        raise BenchError(str(exc)) from None
    reps = opts.reps
    out_dir = Path(opts.out) if opts.out else default_out_dir()
    new_or_empty_folder("--out", out_dir, BenchError)  # parse_options checked a given --out; this, the default
    out_dir.mkdir(parents=True, exist_ok=True)
    policies = [p for p in opts.policies if p in tgt.policies]
    if not policies:
        raise BenchError(f"--policies: none of {', '.join(opts.policies)} runs on {target.describe(tgt)} "
                         f"(it runs {', '.join(tgt.policies)})")
    estimate = estimate_seconds(scenarios, reps, policies=len(policies))
    progress = Progress(len(scenarios) * reps * len(policies), estimate)
    progress.say(f"{len(scenarios)} scenario(s) ({', '.join(s.name for s in scenarios)}) x {len(policies)} "
                 f"policies x {reps} rep(s) on {target.describe(tgt)}; about {estimate / 60:.0f} min; "
                 f"results in {out_dir}")
    started = datetime.now(timezone.utc)
    load_before = _load()
    t0 = time.monotonic()
    previous = _sigterm_as_interrupt()
    try:
        with progress:
            result = runner.run(tgt, scenarios, reps, out_dir, progress, policies)
    except TargetError as exc:
        raise BenchError(str(exc)) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "target": target.describe(tgt),
        "quick": opts.quick,
        "reps": reps,
        "policies": policies,
        "baseline": "round-robin",
        "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": _load()},
        "interrupted": result.interrupted,
        "failures": result.failures,
        "runs": [{"scenario": r.scenario, "policy": r.policy, "rep": r.rep, "rate_rps": r.rate,
                  "order": r.order, **r.measures} for r in result.records],
    }
    summary = report.summarize(scenarios, result.records, policies)
    doc = report.write_summary(out_dir / "summary.json", meta, summary)
    pngs = report.plots(doc, out_dir)
    (out_dir / "report.md").write_text(report.markdown(doc, pngs))
    say(report.screen(doc, out_dir))
    if result.interrupted:
        raise KeyboardInterrupt
    return out_dir, doc
