"""`invoke bench-crosscheck`: rap.loadgen measured against vegeta, an open-loop generator nobody here wrote.

Same cluster, same Service, same node namespace, same fixed rate: the
benchmark's own load path (rap.bench.target.LocalTarget.load, which runs
rap.loadgen in node-1's namespace) and ``vegeta attack -keepalive=false``
(a new connection per request, as rap.loadgen does) take turns for a few
rounds, so that drift on a shared machine touches both. Each run's p50 and
p95 are computed by the same function (rap.bench.stats.percentile) over the
successful requests; vegeta's own JSON report is kept beside them as a check
of the parsing. The verdict: the ratio of the medians over rounds of the two
tools' p50, within TOLERANCE or not.

What the two measure differs in one known way: rap.loadgen times each request
from its *scheduled* start, vegeta from the moment a worker actually starts
it. rap.loadgen's lateness is therefore in its latency (asyncio waits in whole
milliseconds, so it wakes up to 1 ms late, plus its per-request work), and
vegeta's is not: its lateness against its own schedule (``start_lag_ms``, from
its timestamps) is reported to show how small that part is for vegeta. p50 by
serving node tells a constant offset of this kind from a different mix of the
cluster's latency modes.

vegeta is built on first use with the project's Go toolchain
(rap.build.toolchain), pinned to one version whose module checksum is kept
here, into ``<cache>/bin/vegeta``. Not here: the benchmark itself
(rap.bench.runner) or the load generator (rap.loadgen).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

from rap.bench import stats
from rap.bench.scenarios import MAX_DURATION_S, POLICIES, SCENARIOS, ScenarioError, validate
from rap.errors import OptionError, UserError
from rap.options import number, one_of, with_defaults

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
# The module's go.sum hash: a release re-tagged upstream, or a proxy that
# serves other bytes, fails here instead of being measured against.
VEGETA_SUM = "h1:J/UiNS3f69MkL0tsRLVUUV8uXXQZxdRUchtS+GYiSFc="
TOLERANCE = 0.10  # issue 12: both tools' p50 within 10% of each other
CLIENT = 1  # node-1's namespace, where the benchmark's open-loop load comes from
TOOLS = ("loadgen", "vegeta")
MAX_RATE = 500
MAX_ROUNDS = 10
MAX_WARMUP_S = 30.0
MAX_TIMEOUT_S = 60.0



def say(text: str) -> None:
    """A ``[crosscheck]`` progress line (rap.status, loaded only when the check runs: `invoke --list` stays fast)."""
    from rap.status import Status

    Status("crosscheck").say(text)


class CrossCheckError(UserError):
    """The cross-check could not run; the message names the problem and the fix."""


class CrossCheckOptionError(CrossCheckError, OptionError):
    """A bad bench-crosscheck option, found before anything was started (exit 2)."""


@dataclass(frozen=True)
class Options:
    scenario: str = "rates"  # only its cluster shape: the benchmark's open-loop scenario, on the geo shape
    policy: str = "round-robin"  # the proxy on every node, as `invoke bench` names it (stock kube-proxy)
    rate: int = 40
    duration_s: float = 15.0
    rounds: int = 3
    warmup_s: float = 3.0
    timeout_s: float = 10.0
    out: str | None = None


def option_help() -> dict[str, str]:
    d = Options()
    return with_defaults({
        "scenario": f"cluster shape of this benchmark scenario ({', '.join(SCENARIOS)}); its load and "
                    "overload are not used",
        "policy": f"proxy on every node, by the benchmark's name ({', '.join(POLICIES)})",
        "rate": f"requests per second from node-1, both tools, whole number 1..{MAX_RATE}",
        "duration": f"seconds of load per run, at most {MAX_DURATION_S}",
        "rounds": f"rounds of one run per tool, their order alternating, 1..{MAX_ROUNDS}",
        "warmup": f"seconds of unrecorded rap.loadgen load before the first round, 0..{MAX_WARMUP_S:g}",
        "timeout": f"per-request timeout in seconds, both tools, at most {MAX_TIMEOUT_S:g}",
        "out": "results folder, new or empty (default results/crosscheck-<timestamp>)",
    }, {"scenario": d.scenario, "policy": d.policy, "rate": d.rate, "duration": d.duration_s,
        "rounds": d.rounds, "warmup": d.warmup_s, "timeout": d.timeout_s})


def parse_options(*, scenario=None, policy=None, rate=None, duration=None, rounds=None, warmup=None,
                  timeout=None, out=None) -> Options:
    """Raw option text -> Options; a bad option is a CrossCheckOptionError naming it."""
    d = Options()
    err = CrossCheckOptionError
    opts = Options(scenario=scenario or d.scenario, policy=policy or d.policy,
                   rate=number("--rate", rate, int, err, d.rate),
                   duration_s=number("--duration", duration, float, err, d.duration_s),
                   rounds=number("--rounds", rounds, int, err, d.rounds),
                   warmup_s=number("--warmup", warmup, float, err, d.warmup_s),
                   timeout_s=number("--timeout", timeout, float, err, d.timeout_s), out=out)
    if opts.scenario not in SCENARIOS:
        raise err(f"--scenario: unknown {opts.scenario!r}; choose {one_of(list(SCENARIOS))}")
    if opts.policy not in POLICIES:
        raise err(f"--policy: unknown {opts.policy!r}; choose {one_of(list(POLICIES))}")
    # vegeta's -rate takes a whole number per time unit; whole rates keep both tools on one schedule.
    if not 1 <= opts.rate <= MAX_RATE:
        raise err(f"--rate: must be 1..{MAX_RATE} requests per second, got {opts.rate}")
    if not 0 < opts.duration_s <= MAX_DURATION_S:
        raise err(f"--duration: {opts.duration_s:g}s outside (0, {MAX_DURATION_S}] seconds")
    if opts.rate * opts.duration_s < 20:
        raise err(f"--rate x --duration: {opts.rate * opts.duration_s:g} requests per run are too few "
                  "for a p95; raise either to give at least 20")
    if not 1 <= opts.rounds <= MAX_ROUNDS:
        raise err(f"--rounds: must be 1..{MAX_ROUNDS}, got {opts.rounds}")
    if not 0 <= opts.warmup_s <= MAX_WARMUP_S:
        raise err(f"--warmup: {opts.warmup_s:g}s outside [0, {MAX_WARMUP_S:g}] seconds")
    if not 0 < opts.timeout_s <= MAX_TIMEOUT_S:
        raise err(f"--timeout: {opts.timeout_s:g}s outside (0, {MAX_TIMEOUT_S:g}] seconds")
    out_dir = out_folder(opts)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise err(f"--out: {out_dir} exists and is not an empty folder; choose another one")
    return replace(opts, out=str(out_dir))


def out_folder(opts: Options, now: datetime | None = None) -> Path:
    return Path(opts.out) if opts.out else Path("results") / f"crosscheck-{(now or datetime.now()):%Y%m%d-%H%M%S}"


# ---- vegeta: built once, pinned ----

def vegeta_path() -> Path:
    from rap.paths import cache_dir

    return cache_dir() / "bin" / "vegeta"


def build_vegeta(force: bool = False) -> Path:
    """``<cache>/bin/vegeta`` at VEGETA_VERSION, built unless the stamp says it already is."""
    from rap.build.toolchain import go_env, go_version, run_go
    from rap.paths import cache_dir

    out = vegeta_path()
    stamp = out.with_name("vegeta.stamp")
    env = go_env(cache_dir())
    want = f"{VEGETA_MODULE}@{VEGETA_VERSION} {VEGETA_SUM} {go_version(env)}"
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return out
    # An empty folder of our own as the working directory, so no go.mod around it takes part.
    work = cache_dir() / "tmp" / f"vegeta-build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        module = f"{VEGETA_MODULE}@{VEGETA_VERSION}"
        info = json.loads(run_go(["mod", "download", "-json", module], work, env, "vegeta download",
                                 capture=True))
        if info.get("Sum") != VEGETA_SUM:
            raise CrossCheckError(f"{module} from the Go module proxy has checksum {info.get('Sum')!r}, "
                                  f"not the pinned {VEGETA_SUM}: do not use it; check GOPROXY "
                                  f"and, for a new release, update VEGETA_VERSION and VEGETA_SUM together")
        run_go(["install", "-trimpath", "-ldflags", f"-X main.Version={VEGETA_VERSION}", module],
               work, {**env, "GOBIN": str(work / "bin")}, "vegeta build")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "bin" / "vegeta", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp.write_text(want + "\n")
    return out


def attack_command(vegeta: Path, netns: str, targets: Path, results: Path, opts: Options) -> list[str]:
    """``vegeta attack`` in ``netns``: fixed rate, a new connection per request, bounded in time and workers."""
    # As many workers as rap.loadgen could have requests in flight (rate x timeout): never fewer, so
    # vegeta does not queue ticks behind busy workers; and a bound, as every load loop here has.
    max_workers = int(opts.rate * opts.timeout_s) + 10
    return ["ip", "netns", "exec", netns, str(vegeta), "attack", f"-targets={targets}",
            f"-rate={opts.rate}/1s", f"-duration={opts.duration_s:g}s", f"-timeout={opts.timeout_s:g}s",
            "-keepalive=false", "-http2=false", f"-max-workers={max_workers}", "-max-body=0",
            f"-output={results}"]


def run_vegeta(vegeta: Path, url: str, opts: Options, results: Path) -> tuple[list[dict], dict]:
    """One vegeta run from node-1's namespace: its samples (parsed) and its own report (parsed)."""
    from rap.localcluster.config import node_netns

    targets = results.with_suffix(".targets")
    targets.write_text(f"GET {url}\n")
    _vegeta(attack_command(vegeta, node_netns(CLIENT), targets, results, opts),
            opts.duration_s + opts.timeout_s + 30)
    encoded = _vegeta([str(vegeta), "encode", "-to=json", str(results)], 60)
    report = _vegeta([str(vegeta), "report", "-type=json", str(results)], 60)
    return parse_encoded(encoded), parse_report(report)


def _vegeta(cmd: list[str], timeout: float) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CrossCheckError(f"vegeta did not finish within {timeout:g}s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise CrossCheckError(f"vegeta failed (exit {proc.returncode}): {' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def parse_encoded(text: str) -> list[dict]:
    """``vegeta encode -to=json`` lines -> samples like rap.loadgen's (start, latency_ms, status, pod, node, error).

    ``start`` is seconds after the first request actually started; ``seq`` is
    vegeta's schedule index (request k was due k/rate after request 0). pod
    and node are the backend's X-Pod and X-Node headers, as rap.loadgen reads them.
    """
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
            rows.append((int(r["seq"]), datetime.fromisoformat(r["timestamp"]), float(r["latency"]) / 1e6,
                         int(r["code"]), (headers.get("x-pod") or [""])[0], (headers.get("x-node") or [""])[0],
                         str(r.get("error") or "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CrossCheckError(f"vegeta encode, line {n}: not a vegeta result ({exc}): {line[:120]!r}") from None
    if not rows:
        return []
    rows.sort()
    t0 = rows[0][1]
    return [{"seq": seq, "start": (ts - t0).total_seconds(), "latency_ms": ms, "status": code, "pod": pod,
             "node": node, "error": err} for seq, ts, ms, code, pod, node, err in rows]


def parse_report(text: str) -> dict:
    """``vegeta report -type=json`` -> its own requests, success ratio, p50 and p95 (ms)."""
    try:
        r = json.loads(text)
        lat = r["latencies"]
        return {"requests": int(r["requests"]), "success": float(r["success"]),
                "p50_ms": float(lat["50th"]) / 1e6, "p95_ms": float(lat["95th"]) / 1e6}
    except (ValueError, KeyError, TypeError) as exc:
        raise CrossCheckError(f"vegeta report: not a vegeta JSON report ({exc}): {text[:200]!r}") from None


def start_lag_ms(samples: list[dict], rate: float) -> dict:
    """How late vegeta started each request against its own schedule (request k due k/rate after request 0)."""
    lags = [max((s["start"] - s["seq"] / rate) * 1000, 0.0) for s in samples]
    return {"p50": stats.percentile(lags, 50), "p95": stats.percentile(lags, 95),
            "max": max(lags) if lags else None}


# ---- measures, verdict, table ----

def measures(samples: list[dict]) -> dict:
    """Requests, success ratio, p50/p95 over the successful ones, and p50 by serving node: one function for both.

    The local cluster's latency is one mode per serving node (its round trip
    from node-1); p50 by node shows whether a gap between the tools is an
    offset on every request or a different share of the slow modes.
    """
    ok = [s for s in samples if s["status"] == 200]
    lat = [float(s["latency_ms"]) for s in ok]
    by_node: dict[str, list[float]] = {}
    for s in ok:
        by_node.setdefault(s.get("node") or "?", []).append(float(s["latency_ms"]))
    return {"requests": len(samples), "ok": len(ok), "success": len(ok) / len(samples) if samples else None,
            "p50_ms": stats.percentile(lat, 50), "p95_ms": stats.percentile(lat, 95),
            "by_node": {n: {"ok": len(v), "p50_ms": stats.percentile(v, 50)} for n, v in sorted(by_node.items())}}


def verdict(runs: list[dict], tolerance: float = TOLERANCE) -> dict:
    """Medians over rounds per tool (also of p50 by node), and whether loadgen's p50 is within ``tolerance``."""
    medians = {}
    for tool in TOOLS:
        mine = [r for r in runs if r["tool"] == tool]
        nodes = sorted({n for r in mine for n in r["by_node"]})
        medians[tool] = {m: stats.spread(r[m] for r in mine)["median"] for m in ("p50_ms", "p95_ms", "success")}
        medians[tool]["p50_ms_by_node"] = {
            n: stats.spread(r["by_node"].get(n, {}).get("p50_ms") for r in mine)["median"] for n in nodes}
    ratio = stats.ratio(medians["loadgen"]["p50_ms"], medians["vegeta"]["p50_ms"])
    # The epsilon keeps exactly 10% within: 55 / 50 - 1 is 0.10000000000000009 in floating point.
    return {"medians": medians, "p50_ratio": ratio, "tolerance": tolerance,
            "within": ratio is not None and abs(ratio - 1.0) <= tolerance + 1e-9}


def round_order(index: int) -> tuple[str, ...]:
    """Round 0: loadgen then vegeta; round 1 the other way; ... so neither tool always runs first."""
    return TOOLS if index % 2 == 0 else TOOLS[::-1]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def table(runs: list[dict], result: dict) -> str:
    """One line per run, the medians, p50 by serving node, and the verdict."""
    lines = [f"{'round':<7}{'tool':<9}{'requests':>8} {'success':>8} {'p50 ms':>7} {'p95 ms':>7}  note"]
    for r in runs:
        note = ""
        if r["tool"] == "vegeta":
            rep, lag = r["report"], r["start_lag_ms"]
            note = (f"vegeta's own report: p50 {_ms(rep['p50_ms'])}, p95 {_ms(rep['p95_ms'])}; "
                    f"start lag p50 {_ms(lag['p50'])}, max {_ms(lag['max'])} ms")
        lines.append(f"{r['round']:<7}{r['tool']:<9}{r['requests']:>8} {_pct(r['success']):>8} "
                     f"{_ms(r['p50_ms']):>7} {_ms(r['p95_ms']):>7}  {note}".rstrip())
    m, ratio = result["medians"], result["p50_ratio"]
    for tool in TOOLS:
        by_node = ", ".join(f"{n} {_ms(v)}" for n, v in m[tool]["p50_ms_by_node"].items())
        lines.append(f"{'median':<7}{tool:<9}{'':>8} {_pct(m[tool]['success']):>8} "
                     f"{_ms(m[tool]['p50_ms']):>7} {_ms(m[tool]['p95_ms']):>7}  p50 by serving node: {by_node}")
    shown = "-" if ratio is None else f"{ratio:.3f}"
    lines.append(f"p50 ratio loadgen/vegeta {shown}: "
                 f"{'within' if result['within'] else 'NOT within'} {result['tolerance']:.0%}")
    return "\n".join(lines)


# ---- the run ----

def crosscheck(opts: Options, echo=print) -> tuple[Path, dict]:
    """Bring up the local cluster, run both tools in alternating rounds, tear down; (out folder, result)."""
    from rap.bench import _sigterm_as_interrupt, target
    from rap.localcluster import cluster, config

    scenario = validate(replace(SCENARIOS[opts.scenario], mode="open", rates=(float(opts.rate),),
                                clients=(CLIENT,), duration_s=opts.duration_s, warmup_s=opts.warmup_s,
                                timeout_s=opts.timeout_s, overload=None))
    if os.geteuid() != 0:
        raise CrossCheckError("bench-crosscheck runs the local cluster, which needs root: run it as root")
    try:
        cluster.preflight(config.ClusterConfig(proxy=POLICIES[opts.policy][0], **scenario.cluster_kwargs()))
    except UserError as exc:
        raise CrossCheckError(str(exc)) from None
    vegeta = build_vegeta()
    out_dir = Path(opts.out or out_folder(opts))
    out_dir.mkdir(parents=True, exist_ok=True)
    tgt = target.LocalTarget()
    runs: list[dict] = []
    previous = _sigterm_as_interrupt()  # a SIGTERM tears the cluster down as Ctrl-C does
    try:
        say(f"local cluster: scenario {scenario.name}'s shape, proxy {opts.policy}")
        with tgt.cluster(scenario, say=say) as st:
            tgt.switch(opts.policy)
            url = f"http://{st.cluster_ip}:80/"
            if opts.warmup_s > 0:
                say(f"warm-up: rap.loadgen {opts.warmup_s:g}s at {opts.rate} req/s (not recorded)")
                tgt.load(replace(scenario, duration_s=opts.warmup_s), float(opts.rate))
            for i in range(opts.rounds):
                for tool in round_order(i):
                    say(f"round {i + 1}/{opts.rounds}: {tool}, {opts.rate} req/s for {opts.duration_s:g}s "
                        f"from node-{CLIENT} to {url}")
                    runs.append(_one_run(tool, i + 1, tgt, scenario, vegeta, url, opts, out_dir))
    except target.TargetError as exc:
        raise CrossCheckError(str(exc)) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    result = verdict(runs)
    doc = {"options": asdict(opts), "scenario": scenario.name, "client": f"node-{CLIENT}", "url": url,
           "vegeta": {"module": VEGETA_MODULE, "version": VEGETA_VERSION, "sum": VEGETA_SUM,
                      "flags": attack_command(vegeta, "NETNS", Path("TARGETS"), Path("RESULTS"), opts)[5:]},
           "runs": runs, **result}
    (out_dir / "crosscheck.json").write_text(json.dumps(doc, indent=2) + "\n")
    echo(table(runs, result))
    echo(f"results: {out_dir / 'crosscheck.json'}")
    return out_dir, doc


def _one_run(tool: str, rnd: int, tgt, scenario, vegeta: Path, url: str, opts: Options, out_dir: Path) -> dict:
    """One tool's run: its samples written as JSON lines beside the result, and its measures."""
    extra: dict = {}
    if tool == "loadgen":
        samples = tgt.load(scenario, float(opts.rate))
    else:
        samples, report = run_vegeta(vegeta, url, opts, out_dir / f"vegeta-{rnd}.bin")
        extra = {"report": report, "start_lag_ms": start_lag_ms(samples, opts.rate)}
    with open(out_dir / f"{tool}-{rnd}.jsonl", "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples)
    return {"round": rnd, "tool": tool, **measures(samples), **extra}
