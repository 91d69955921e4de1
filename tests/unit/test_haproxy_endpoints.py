"""rap.localcluster.haproxy.endpoints (API JSON -> this port's ready endpoints) and .redirect (the nat rule)."""

from __future__ import annotations

import pytest

from rap.localcluster.haproxy import endpoints as ep
from rap.localcluster.haproxy import redirect
from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.sh import ToolError


def _svc(name, ip, ports, ns="default"):
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip, "ports": ports}}


WEB = _svc("web", "10.215.0.10", [{"name": "http", "port": 80, "protocol": "TCP"}])
SERVICES = {"items": [_svc("other", "10.215.0.11", [{"port": 80}]), WEB,
                      _svc("dns", "10.215.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"}], ns="kube-system")]}
ENDPOINTS = {"items": [{"metadata": {"namespace": "default", "name": "web"}, "subsets": [
    {"addresses": [{"ip": "10.214.1.11", "nodeName": "node-1"}, {"ip": "10.214.2.11", "nodeName": "node-2"}],
     "notReadyAddresses": [{"ip": "10.214.3.11", "nodeName": "node-3"}],
     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
    {"addresses": [{"ip": "10.214.3.12"}], "ports": [{"name": "metrics", "port": 9100}]},
]}]}


def test_the_service_is_found_by_cluster_ip_and_tcp_port():
    assert ep.find_service(SERVICES, "10.215.0.10", 80) is WEB
    assert ep.find_service(SERVICES, "10.215.0.10", 53) is None  # UDP is not proxied
    assert ep.find_service(SERVICES, "10.215.0.99", 80) is None


def test_targets_are_the_ready_addresses_of_the_port_named_like_the_service_port():
    assert ep.service_targets(WEB, ENDPOINTS, "10.215.0.10", 80) == [("10.214.1.11", 8080), ("10.214.2.11", 8080)]
    assert ep.service_targets(WEB, {"items": []}, "10.215.0.10", 80) == []


def test_fetch_lists_services_once_then_only_this_services_endpoints(monkeypatch):
    calls = []

    def core_json(api, method, **kw):
        calls.append((method, kw))
        return SERVICES if method == "list_service_for_all_namespaces" else ENDPOINTS

    monkeypatch.setattr("rap.pyproxy.monitor.core_json", core_json)
    source = ep.ServiceEndpoints(object(), "10.215.0.10", 80)
    assert source.fetch() == [("10.214.1.11", 8080), ("10.214.2.11", 8080)]
    assert source.fetch() == [("10.214.1.11", 8080), ("10.214.2.11", 8080)]
    assert [m for m, _ in calls] == ["list_service_for_all_namespaces", "list_namespaced_endpoints",
                                     "list_namespaced_endpoints"]
    assert calls[1][1] == {"namespace": "default", "field_selector": "metadata.name=web"}
    assert source.name == "default/web"


def test_fetch_is_none_until_the_service_exists(monkeypatch):
    services = {"items": []}
    monkeypatch.setattr("rap.pyproxy.monitor.core_json",
                        lambda api, method, **kw: services if method.startswith("list_service") else ENDPOINTS)
    source = ep.ServiceEndpoints(object(), "10.215.0.10", 80)
    assert source.fetch() is None
    services["items"].append(WEB)
    assert len(source.fetch()) == 2


# -- the rule --


class FakeIptables:
    """The nat table of one namespace, as far as the commands redirect sends go."""

    def __init__(self):
        self.chains: dict[str, list[list[str]]] = {"OUTPUT": [["-j", "KUBE-SERVICES"]]}
        self.sent: list[tuple[list[str], str | None]] = []

    def __call__(self, cmd, netns=None):
        assert cmd[:4] == ["iptables", "-w", "-t", "nat"]
        self.sent.append((cmd[4:], netns))
        op, chain, *rest = cmd[4:]
        fail = ToolError(f"`{' '.join(cmd)}` failed: no such rule or chain")
        if op == "-N":
            if chain in self.chains:
                raise fail
            self.chains[chain] = []
        elif op == "-A":
            self.chains[chain].append(rest)
        elif op == "-I":
            self.chains[chain].insert(int(rest[0]) - 1, rest[1:])
        elif op == "-D":
            if rest not in self.chains.get(chain, []):
                raise fail
            self.chains[chain].remove(rest)
        elif op == "-F":
            if chain not in self.chains:
                raise fail
            self.chains[chain] = []
        elif op == "-X":
            if chain not in self.chains or any(r[-1] == chain for rules in self.chains.values() for r in rules):
                raise fail
            del self.chains[chain]
        return ""


@pytest.fixture
def nat(monkeypatch):
    fake = FakeIptables()
    monkeypatch.setattr(redirect, "run", fake)
    return fake


def test_install_puts_the_jump_first_in_output_and_one_dnat_in_its_chain(nat):
    redirect.install("10.215.0.10", 80, "127.0.0.1", 10280)
    assert nat.chains["OUTPUT"][0] == ["-m", "comment", "--comment", "rap-haproxy", "-j", "RAP-HAPROXY"]
    assert nat.chains["RAP-HAPROXY"] == [["-d", "10.215.0.10/32", "-p", "tcp", "--dport", "80", "-m", "comment",
                                          "--comment", "rap-haproxy", "-j", "DNAT",
                                          "--to-destination", "127.0.0.1:10280"]]


def test_install_twice_leaves_one_rule(nat):
    redirect.install("10.215.0.10", 80, "127.0.0.1", 10280)
    redirect.install("10.215.0.10", 80, "127.0.0.1", 10280)
    assert sum(r[-1] == "RAP-HAPROXY" for r in nat.chains["OUTPUT"]) == 1
    assert len(nat.chains["RAP-HAPROXY"]) == 1


def test_cleanup_removes_every_stale_jump_and_the_chain_in_the_named_namespace_and_is_idempotent(nat):
    redirect.install("10.215.0.10", 80, "127.0.0.1", 10280)
    nat.chains["OUTPUT"].append(list(redirect.jump_args()[1:]))  # as a crashed run might leave it
    redirect.cleanup("rap-node-2")
    assert nat.chains == {"OUTPUT": [["-j", "KUBE-SERVICES"]]}
    assert {netns for _, netns in nat.sent[-4:]} == {"rap-node-2"}
    redirect.cleanup("rap-node-2")  # nothing left: no error
    assert nat.chains == {"OUTPUT": [["-j", "KUBE-SERVICES"]]}


def test_a_failing_install_is_a_haproxy_error_naming_root(monkeypatch):
    def refuse(cmd, netns=None):
        raise ToolError(f"`{' '.join(cmd)}` failed: Permission denied (you must be root)")

    monkeypatch.setattr(redirect, "run", refuse)
    with pytest.raises(HaproxyError, match="Permission denied.*runs as root inside the node's namespace"):
        redirect.install("10.215.0.10", 80, "127.0.0.1", 10280)
