"""The proxies a local cluster can run on its nodes: one table, one entry per kind.

Every kind runs as one process per node namespace (``proxy-i``), started and
stopped the same way; what differs is its command line, whether it reads
RAP's environment (and which of RAP's two decision rules it is told to use),
the Service's internalTrafficPolicy while it runs, and which kube-proxy
build (if any) cleans up its rules when it is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProxyKind:
    name: str
    help: str
    build: str | None = None  # kube-proxy build it runs: "rap" or "stock"; None for the others
    mode: str | None = None  # kube-proxy --proxy-mode
    module: str | None = None  # `python -m MODULE` for the kinds that are not kube-proxy
    balance: str | None = None  # HAProxy's balance algorithm
    rap_env: bool = False  # reads RAP_* (the RAP monitor's settings)
    # RAP's decision rule (the config table's "mode") this kind sets; None leaves the table's
    # default. Set explicitly so that "rap" stays the paper's rule whatever that default becomes.
    rap_mode: str | None = None
    traffic_policy: str = "Cluster"  # the Service's internalTrafficPolicy while this kind runs

    @property
    def is_kube_proxy(self) -> bool:
        return self.build is not None


KINDS: dict[str, ProxyKind] = {k.name: k for k in (
    ProxyKind("rap", "kube-proxy v1.21.14 with rap.go, userspace mode, classic rule (the paper's)", build="rap",
              mode="userspace", rap_env=True, rap_mode="classic"),
    ProxyKind("rap-adaptive", "kube-proxy v1.21.14 with rap.go, userspace mode, adaptive rule (spill the "
              "excess, spread by cost)", build="rap", mode="userspace", rap_env=True, rap_mode="adaptive"),
    ProxyKind("stock", "upstream kube-proxy v1.21.14, userspace mode (round robin)", build="stock",
              mode="userspace"),
    ProxyKind("iptables", "upstream kube-proxy v1.21.14, iptables mode (random over all endpoints)",
              build="stock", mode="iptables"),
    ProxyKind("local-only", "upstream kube-proxy v1.21.14, iptables mode, Service internalTrafficPolicy: "
              "Local (this node's endpoints only)", build="stock", mode="iptables", traffic_policy="Local"),
    ProxyKind("python", "the Python reference proxy (rap.pyproxy) running --policy", module="rap.pyproxy",
              rap_env=True),
    ProxyKind("haproxy", "HAProxy in TCP mode, balance random(2) (two random choices, fewer connections "
              "wins)", module="rap.localcluster.haproxy", balance="random(2)"),
    ProxyKind("haproxy-leastconn", "HAProxy in TCP mode, balance leastconn", module="rap.localcluster.haproxy",
              balance="leastconn"),
)}
NAMES = tuple(KINDS)

# kube-proxy's builds, by the names the build writes (rap/build/binaries.py).
BINARIES = {"rap": "kube-proxy", "stock": "kube-proxy-stock"}

# Alpha in v1.21; kube-apiserver keeps the Service field only with it on, and
# kube-proxy honours the field only with it on.
FEATURE_GATES = "ServiceInternalTrafficPolicy=true"


def kind(name: str) -> ProxyKind:
    return KINDS[name]
