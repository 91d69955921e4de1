"""What the inter-node delayer costs: its CPU per node under a bounded load, side by side with other builds.

Runs against a local cluster that is already up with ``--rtt`` pairs
(``invoke local-up ... --rtt node-2=20ms``). For each *variant* in turn it
puts the delay in place (``none``: no rules and no delayer; otherwise one
delayer per node from the variant's binary), times TCP connects from the
client node to another node's 10250 (the accuracy RAP sees), then drives an
open-loop load from the client node through the Service and reads, before
and after:

- each delayer's CPU time (``utime``/``stime`` from ``/proc/PID/stat``);
- the packets its rules queued (the NFQUEUE rules' iptables counters);
- the cluster's CPU time: every process in its namespaces (proxies, pods,
  node agents, delayers), the load generator and ksoftirqd. A delayer's
  system time includes the kernel's work on each packet it releases (the
  verdict re-injects the packet, which then runs through the stack in the
  delayer's system call), work done elsewhere without it; the cluster's
  difference from ``none`` is what the delay really adds;
- the whole machine's busy CPU time (``/proc/stat``), which also counts
  whatever else runs on the machine: compare variants of the same run only.

Variants alternate round by round (A B A B ...), so drift on a shared machine
falls on all of them alike. At the end the cluster's own delayers (the
current build) are back in place. The figures are pooled and printed by
rap.localcluster.netdelay.costfigures. Not here: bringing the cluster up or down.

Run as root, beside the running cluster::

    python3 -m rap.localcluster.netdelay.cost --rev before=HEAD~1 --current after --none \\
        --rate 40 --duration 20 --rounds 2

``--rev LABEL=REV`` builds netdelay from that git revision of this folder;
``--binary LABEL=PATH`` runs a given build; ``--current LABEL`` is this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from rap.errors import UserError
from rap.localcluster import procs, sh, state, traffic
from rap.localcluster import config as cfg
from rap.localcluster.netdelay.build import BINARY_NAME, SOURCE_DIR, build_netdelay
from rap.localcluster.netdelay.costfigures import NONE, Round, per_variant, report
from rap.localcluster.netdelay.rtt import parse_rtt
from rap.localcluster.netdelay.rules import CHAIN, NodeAddr
from rap.localcluster.netdelay.runtime import apply, remove

CLK_TCK = os.sysconf("SC_CLK_TCK")
RTT_PORT = 10250  # what every node of the local cluster answers TCP on (cluster.RTT_PORT)

CONNECT = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=5)
    out.append((time.perf_counter() - t0) * 1e3)
    s.close()
    time.sleep(0.02)
print(json.dumps(out))
"""


class CostError(UserError, RuntimeError):
    """The measurement cannot run as asked; the message says why and what to do."""


@dataclass
class Variant:
    label: str
    binary: Path | None  # None: no delay at all


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def system_busy() -> float:
    """CPU seconds the whole machine has spent busy (every CPU, all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def cluster_pids() -> list[int]:
    """Every process in the cluster's namespaces (proxies, pods, node agents, delayers) and ksoftirqd."""
    pids = []
    for line in sh.run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("rap-"):
            pids += [int(p) for p in sh.run(["ip", "netns", "pids", name], check=False).split() if p.isdigit()]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().startswith("ksoftirqd/"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def cluster_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each of those processes that is still there."""
    out = {}
    for pid in pids:
        try:
            out[pid] = sum(cpu_times(pid))
        except (OSError, IndexError):
            pass
    return out


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the load generator, once it has exited)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def queued_packets(node: NodeAddr) -> int:
    """Packets the node's RAP-NETDELAY rules have sent to a queue so far (0 when there are none)."""
    out = sh.run(["iptables", "-w", "-t", "mangle", "-L", CHAIN, "-nvx"], check=False, netns=node.namespace)
    return sum(int(line.split()[0]) for line in out.splitlines() if "NFQUEUE" in line)


def connect_times(client: NodeAddr, host: str, n: int) -> list[float]:
    """Milliseconds of ``n`` TCP connects from the client node to host:10250."""
    out = sh.run(["ip", "netns", "exec", client.namespace, sys.executable, "-c", CONNECT, host,
                  str(RTT_PORT), str(n)])
    return json.loads(out)


def build_revision(rev: str, out_dir: Path) -> Path:
    """netdelay built from this folder as it was at git revision ``rev``, into out_dir."""
    repo = SOURCE_DIR.parents[2]
    rel = SOURCE_DIR.relative_to(repo)
    src = out_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, str(rel)], capture_output=True)
    if archive.returncode != 0:
        raise CostError(f"--rev {rev}: git archive failed: {archive.stderr.decode().strip()} "
                        f"(give a revision of this repository, e.g. HEAD~1)")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return build_netdelay(force=True, source_dir=src / rel, out=out_dir / BINARY_NAME)


def copy_binary(path: Path, out_dir: Path) -> Path:
    """A copy of a netdelay build named ``netdelay``: local-down and find_delayers know it by that name."""
    if not path.is_file():
        raise CostError(f"--binary {path}: no such file (build one with `go build` in {SOURCE_DIR})")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, out_dir / BINARY_NAME)
    return out_dir / BINARY_NAME


def cluster_nodes() -> tuple[state.ClusterState, list[NodeAddr], dict[tuple[int, int], float]]:
    """The running cluster, its nodes as the delayer sees them, and its RTTs."""
    st = state.load(state.runtime_dir())
    if st is None or st.phase != "up":
        raise CostError("no local cluster is up; start one with "
                        "`invoke local-up --rtt node-2=20ms ...` first")
    nodes = [NodeAddr(i, cfg.node_netns(i), cfg.node_ip(i), cfg.pod_cidr(i))
             for i in range(1, len(st.nodes) + 1)]
    rtts = parse_rtt([f"{pair}={ms}ms" for pair, ms in st.config.get("rtt_ms", {}).items()], nodes=len(nodes))
    if not rtts:
        raise CostError("the cluster has no --rtt pairs, so there is no delayer to measure; "
                        "start it with e.g. `--rtt node-2=20ms`")
    return st, nodes, rtts


def use(variant: Variant, nodes, rtts, log_dir: Path) -> dict[str, int]:
    """Replace whatever delay is in place by the variant's; its delayers' pids."""
    remove(nodes)
    if variant.binary is None:
        return {}
    return apply(rtts, nodes, log_dir=log_dir / variant.label, binary=variant.binary, env=_env())


def _env() -> dict[str, str]:
    """The mark local-down finds the cluster's processes by (as local-up gives its delayers)."""
    return {procs.MARK: str(state.runtime_dir())}


def exit_lines(log_dir: Path, label: str, since: dict[str, int]) -> list[str]:
    """The per-queue summary lines the variant's delayers printed on exit (after offset ``since``)."""
    lines = []
    for ns, offset in since.items():
        path = log_dir / label / f"netdelay-{ns}.log"
        if path.exists():
            text = path.read_bytes()[offset:].decode(errors="replace")
            lines += [f"{ns} {line}" for line in text.splitlines() if line.startswith("queue=")]
    return lines


def measure(variant: Variant, rnd: int, st, nodes, rtts, args, log_dir: Path) -> Round:
    client = nodes[args.client - 1]
    pids = use(variant, nodes, rtts, log_dir)
    offsets = {ns: (log_dir / variant.label / f"netdelay-{ns}.log").stat().st_size for ns in pids}
    time.sleep(1.0)
    peer = nodes[args.peer - 1]
    connects = connect_times(client, peer.ip, args.connects)
    cpu0 = {ns: cpu_times(pid) for ns, pid in pids.items()}
    pk0 = {n.namespace: queued_packets(n) for n in nodes}
    pids_now = cluster_pids()
    cl0, kids0 = cluster_cpu(pids_now), children_cpu()
    busy0, t0 = system_busy(), time.monotonic()
    samples = traffic.load(client.namespace, st.cluster_ip, 80, mode="open", rate=args.rate,
                           duration=args.duration, max_requests=int(args.rate * args.duration) + 1,
                           timeout=10)
    busy1, t1 = system_busy(), time.monotonic()
    cl1, kids1 = cluster_cpu(pids_now), children_cpu()
    cpu1 = {ns: cpu_times(pid) for ns, pid in pids.items()}
    pk1 = {n.namespace: queued_packets(n) for n in nodes}
    ok = [s for s in samples if s.status == 200]
    r = Round(variant.label, rnd, t1 - t0, len(samples), len(ok),
              sum(1 for s in ok if s.node and s.node != cfg.node_name(args.client)),
              statistics.median(s.latency_ms for s in ok) if ok else float("nan"), connects,
              dict(Counter(s.error or f"HTTP {s.status}" for s in samples if s.status != 200).most_common(5)),
              {ns: cpu1[ns][0] - cpu0[ns][0] for ns in pids}, {ns: cpu1[ns][1] - cpu0[ns][1] for ns in pids},
              {ns: pk1[ns] - pk0[ns] for ns in pk0}, busy1 - busy0,
              sum(cl1[p] - cl0[p] for p in cl1 if p in cl0) + kids1 - kids0)
    remove(nodes)  # SIGTERM: the delayers print their per-queue figures
    r.summaries = exit_lines(log_dir, variant.label, offsets)
    return r


def _labelled(spec: str, option: str) -> tuple[str, str]:
    label, sep, value = spec.partition("=")
    if not sep or not label or not value or label == NONE:
        raise CostError(f"{option} {spec!r}: want LABEL=VALUE with a label other than {NONE!r}, e.g. before=HEAD~1")
    return label, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m rap.localcluster.netdelay.cost", description=__doc__.split("\n")[0])
    p.add_argument("--rev", action="append", default=[], help="LABEL=REV: netdelay as of that git revision")
    p.add_argument("--binary", action="append", default=[], help="LABEL=PATH: a netdelay binary")
    p.add_argument("--current", metavar="LABEL", help="this tree's netdelay, under LABEL")
    p.add_argument("--none", action="store_true", help="also run with no delay at all (whole-machine baseline)")
    # 40/s: kube-proxy's userspace proxier dials each backend inside its accept loop, so with
    # RTTs of 20-40 ms to two thirds of the backends it serves about 45 connections a second.
    p.add_argument("--rate", type=float, default=40.0, help="requests per second, open loop (default 40)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per round (default 20)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every variant, interleaved (default 2)")
    p.add_argument("--connects", type=int, default=20, help="TCP connects timed per round (default 20)")
    p.add_argument("--client", type=int, default=1, help="node the load and connects start from (default 1)")
    p.add_argument("--peer", type=int, default=2, help="node whose 10250 the connects go to (default 2)")
    p.add_argument("--json", type=Path, help="write every round and the summary here")
    args = p.parse_args(argv)
    if not (0 < args.rate <= 1000 and 0 < args.duration <= 120 and 1 <= args.rounds <= 10
            and 1 <= args.connects <= 200):
        raise CostError("--rate must be in (0, 1000], --duration in (0, 120] s, --rounds 1..10, --connects 1..200")
    st, nodes, rtts = cluster_nodes()
    for flag, value in (("--client", args.client), ("--peer", args.peer)):
        if not 1 <= value <= len(nodes):
            raise CostError(f"{flag} {value}: the cluster has nodes 1..{len(nodes)}")
    with tempfile.TemporaryDirectory(prefix="netdelay-cost-") as work:  # the builds of other revisions
        return run(args, st, nodes, rtts, Path(work))


def run(args: argparse.Namespace, st, nodes, rtts, work: Path) -> int:
    """Every round of every variant, the figures printed; the cluster's own delayers back at the end."""
    log_dir = state.runtime_dir() / "logs" / "netdelay-cost"
    variants = [Variant(label, build_revision(rev, work / label)) for label, rev in
                (_labelled(s, "--rev") for s in args.rev)]
    for label, path in (_labelled(s, "--binary") for s in args.binary):
        variants.append(Variant(label, copy_binary(Path(path), work / label)))
    if args.current:
        variants.append(Variant(args.current, build_netdelay()))
    if args.none:
        variants.append(Variant(NONE, None))
    labels = [v.label for v in variants]
    if not variants or len(set(labels)) != len(labels):
        raise CostError("give at least one variant (--rev, --binary, --current, --none), each label once")
    rounds: list[Round] = []
    try:
        for rnd in range(args.rounds):
            for v in variants:
                r = measure(v, rnd, st, nodes, rtts, args, log_dir)
                rounds.append(r)
                print(f"round {rnd} {v.label}: delayer cpu {sum(r.delayer_user_s.values()) + sum(r.delayer_sys_s.values()):.2f} s,"
                      f" packets {sum(r.packets.values())}, busy {r.system_busy_s:.1f} s, ok {r.ok}/{r.requests},"
                      f" connect median {statistics.median(r.connect_ms):.2f} ms", flush=True)
        summary = per_variant(rounds)
        ref = next((v.label for v in variants if v.binary is not None), None)
        print(report(summary, ref))
        if args.json:
            args.json.write_text(json.dumps({"rounds": [asdict(r) for r in rounds], "summary": summary}, indent=2))
    finally:
        remove(nodes)
        apply(rtts, nodes, log_dir=state.runtime_dir() / "logs", env=_env())  # the cluster's own delayers again
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"netdelay cost: {exc}", file=sys.stderr)
        sys.exit(2)
