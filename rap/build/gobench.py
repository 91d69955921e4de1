"""NextEndpoint in Go, stock round robin against rap.go, measured side by side (invoke bench-proxy).

The stock package (upstream roundrobin.go) gets only rap_patch/bench_api_test.go,
which uses the API both files export; the RAP package gets rap.go and every
project test file, including rap_bench_test.go, which measures RAP deciding
with fresh metrics (local and forward). Runs alternate stock, RAP, stock, RAP
so both see the same machine load; medians are compared. Not here: the
Python policies' benchmark (rap.policybench) or the cluster benchmark (rap.bench).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

from rap.build import status
from rap.build.overlay import project_test_files, rap_go_path, write_overlay, write_replace_overlay
from rap.build.source import USERSPACE_PKG, Tree, prepare_tree
from rap.build.toolchain import run_go
from rap.options import count
from rap.paths import RAP_PATCH_DIR

BENCH_API = RAP_PATCH_DIR / "bench_api_test.go"
MAX_RATIO_AT_30 = 2.0
MAX_NS_AT_30 = 1000.0
_LINE = re.compile(r"^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op")


def _run(tree: Tree, overlay: Path, pattern: str) -> dict[str, float]:
    args = ["test", "-mod=mod", "-buildvcs=false", "-overlay", str(overlay), "-run", "^$",
            "-bench", pattern, "-benchtime", "200000x", "-count", "1", USERSPACE_PKG]
    out = run_go(args, tree.build_dir, tree.env, "go test -bench", capture=True)
    return {m.group(1): float(m.group(2)) for m in map(_LINE.match, out.splitlines()) if m}


DEFAULT_ROUNDS = 5


def run(rounds: int | str | None = None) -> dict[str, dict[str, float]]:
    """Median ns/op per benchmark, for 'stock' and 'rap'; ``rounds`` as --rounds gives it."""
    rounds = count("--rounds", rounds, DEFAULT_ROUNDS)
    tree = prepare_tree()
    pkg = tree.userspace_dir
    stock = write_replace_overlay(tree, "bench-stock", {str(pkg / BENCH_API.name): str(BENCH_API)})
    rap = write_overlay(tree, "bench-rap", rap_go_path(), project_test_files())
    samples: dict[str, dict[str, list[float]]] = {"stock": defaultdict(list), "rap": defaultdict(list)}
    for i in range(rounds):
        status.say(f"round {i + 1}/{rounds}: stock, then RAP")
        for name, overlay, pattern in (("stock", stock, "^BenchmarkNextEndpoint$"),
                                       ("rap", rap, "NextEndpoint")):
            for bench, ns in _run(tree, overlay, pattern).items():
                samples[name][bench].append(ns)
    return {k: {b: statistics.median(v) for b, v in d.items()} for k, d in samples.items()}


def report(medians: dict[str, dict[str, float]]) -> tuple[str, bool]:
    stock, rap = medians["stock"], medians["rap"]
    lines = [f"{'endpoints':>9} {'stock RR ns/op':>15} {'RAP local':>10} {'RAP forward':>12} {'ratio':>7}"]
    ok = True
    for n in (3, 30, 300):
        base = stock[f"NextEndpoint/endpoints={n}"]
        local = rap[f"RAPNextEndpoint/local/endpoints={n}"]
        forward = rap[f"RAPNextEndpoint/forward/endpoints={n}"]
        worst = max(local, forward)
        lines.append(f"{n:>9} {base:>15.0f} {local:>10.0f} {forward:>12.0f} {worst / base:>6.2f}x")
        if n == 30:
            ok = worst / base <= MAX_RATIO_AT_30 and worst < MAX_NS_AT_30
    lines.append(f"target at 30 endpoints: RAP <= {MAX_RATIO_AT_30:.0f}x stock and < {MAX_NS_AT_30:.0f} ns "
                 f"per call: {'met' if ok else 'NOT met'} (ratio = slower of RAP local/forward over stock)")
    return "\n".join(lines), ok
