"""Where the benchmark runs: the local cluster (default) or a real one by kubeconfig.

Both targets offer the same handful of steps to the runner:

    with target.cluster(scenario):          # up (local) / deploy the workload (kube); always undone
        target.switch(policy)               # the proxy that balances the Service
        with target.overloaded(scenario):   # a co-located workload past the threshold (if any)
            samples = target.load(scenario, rate)   # dicts: start, latency_ms, status, pod, node, error, client

``parse("local")`` or ``parse("kubeconfig=PATH")``; anything else, or a
kubeconfig that cannot be read, is a TargetError with one clear message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict

from rap.bench.scenarios import POLICIES, Scenario

WAIT_FOR_OTHER_CLUSTER_S = 150


class TargetError(RuntimeError):
    """The target cannot be used; the message names it and the fix."""


def parse(text: str | None, **kube_options):
    text = (text or "local").strip()
    if text == "local":
        return LocalTarget()
    if text.startswith("kubeconfig="):
        path = text.split("=", 1)[1]
        if not path:
            raise TargetError("--target kubeconfig=PATH: PATH is empty")
        from rap.bench.kube import KubeTarget

        return KubeTarget(path, **kube_options)
    raise TargetError(f"--target: {text!r} is neither 'local' nor 'kubeconfig=PATH'")


def _sample_dicts(samples, client: int) -> list[dict]:
    out = []
    for s in samples:
        d = asdict(s) if not isinstance(s, dict) else dict(s)
        d["client"] = f"node-{client}"
        out.append(d)
    return out


class Switching:
    """What both targets share: ``current`` names the policy running now, None while unknown."""

    current: str | None = None

    def switch(self, policy: str) -> None:
        if policy == self.current:
            return
        self.current = None  # unknown until the switch has finished
        self._switch(policy)
        self.current = policy

    def _switch(self, policy: str) -> None:
        raise NotImplementedError


class LocalTarget(Switching):
    """The local cluster of rap.localcluster, one `up` per cluster shape."""

    name = "local"
    policies = list(POLICIES)
    applies_rtt = True

    def __init__(self) -> None:
        self.state = None
        self.current: str | None = None  # the policy the proxies run now

    def check(self) -> None:
        from rap.localcluster.cluster import LocalClusterError, preflight
        from rap.localcluster.config import ClusterConfig

        if os.geteuid() != 0:
            raise TargetError("--target local needs root (namespaces, iptables, cgroups): run as root")
        try:
            for kind in ("stock", "rap"):
                preflight(ClusterConfig(proxy=kind))
        except LocalClusterError as exc:
            raise TargetError(str(exc)) from None

    @contextlib.contextmanager
    def cluster(self, scenario: Scenario, say=print):
        from rap.localcluster import cluster, config
        from rap.localcluster.cluster import LocalClusterError

        conf = config.ClusterConfig(proxy="stock", **scenario.cluster_kwargs())
        deadline = time.monotonic() + WAIT_FOR_OTHER_CLUSTER_S
        while True:
            try:
                with contextlib.redirect_stdout(_Quiet()):
                    self.state = cluster.up(conf)
                self.current = "round-robin"  # up starts the stock kube-proxy
                break
            except LocalClusterError as exc:
                if "already exists" not in str(exc) or time.monotonic() > deadline:
                    raise TargetError(str(exc)) from None
                say(f"  another local cluster is up (someone's test?); waiting for it to go away ({exc})")
                time.sleep(15)
        try:
            yield self.state
        finally:
            with contextlib.redirect_stdout(_Quiet()):
                cluster.down()
            self.state = None
            self.current = None

    def check_delay(self, scenario: Scenario) -> None:
        """Before a scenario with RTTs measures: the delay is really there (else TargetError)."""
        if not scenario.rtt_ms:
            return
        from rap.localcluster import cluster
        from rap.localcluster.cluster import LocalClusterError

        try:
            cluster.check_delay()
        except LocalClusterError as exc:
            raise TargetError(f"{scenario.name}: {exc}") from None

    def _switch(self, policy: str) -> None:
        from rap.localcluster import cluster

        kind, py_policy = POLICIES[policy]
        with contextlib.redirect_stdout(_Quiet()):
            self.state = cluster.switch_proxy(kind, py_policy)

    @contextlib.contextmanager
    def overloaded(self, scenario: Scenario, seconds: float):
        """The scenario's co-located overload (if any) for at most ``seconds``."""
        if scenario.overload is None:
            yield
            return
        from rap.localcluster import config

        o = scenario.overload
        pods = [p for p in self.state.pods if p["node"] == f"node-{o.node}"]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", config.node_netns(o.node), sys.executable, "-m", "rap.bench.overload",
             "--cost-ms", str(o.cost_ms), "--concurrency", str(o.threads_per_pod),
             "--duration", f"{min(seconds, 900):.0f}",
             *[f"{p['ip']}:8080" for p in pods]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def load(self, scenario: Scenario, rate: float | None) -> list[dict]:
        """The scenario's load from every client node at once; their samples, each with its client."""
        from rap.localcluster import config, traffic

        results: dict[int, list] = {}
        errors: list[BaseException] = []

        def one(i: int) -> None:
            try:
                results[i] = traffic.load(
                    config.node_netns(i), self.state.cluster_ip, 80, mode=scenario.mode,
                    rate=rate or 1, concurrency=scenario.concurrency, think_ms=scenario.think_ms,
                    duration=scenario.duration_s,
                    max_requests=max_requests(scenario, rate), timeout=scenario.timeout_s)
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in scenario.clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [d for i in scenario.clients for d in _sample_dicts(results[i], i)]


def max_requests(scenario: Scenario, rate: float | None) -> int:
    """A hard bound on one client's requests in one step (count as well as time)."""
    if rate is not None:
        return max(int(rate * scenario.duration_s), 1)
    return 5000 * max(int(scenario.duration_s), 1)


class _Quiet:
    """Swallows the cluster's own step lines; the benchmark prints its own progress."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def describe(target) -> str:
    return target.name if isinstance(target, LocalTarget) else f"kubeconfig={target.kubeconfig}"


__all__ = ["LocalTarget", "TargetError", "parse", "describe", "max_requests"]
