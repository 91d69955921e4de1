"""infra/ least privilege: which firewall rule opens which port to whom, and
what operator_cidr may be. The rules are read from the .tf with python-hcl2;
the operator_cidr rules are evaluated by real Terraform (no provider needed).
"""

from __future__ import annotations

import pytest

from tests.unit.test_infra import _apply, _locals_module, _plain, _ports, _resources

# Ports only the control plane itself uses: etcd, controller-manager, scheduler.
CONTROL_PLANE_ONLY = {"2379", "2380", "2379-2380", "10257", "10259"}


def _opens(rule: dict, port: int) -> bool:
    for p in _ports(rule):
        low, _, high = p.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _tags(rule: dict) -> set[str]:
    return {_plain(t) for t in rule.get("target_tags", [])}


def test_no_rule_opens_etcd_or_the_control_plane_components():
    for name, rule in _resources("google_compute_firewall").items():
        for port in (2379, 2380, 10257, 10259):
            assert not _opens(rule, port), f"rule {name} opens port {port}, which only the control plane uses"


def test_api_server_port_is_opened_only_on_the_control_plane():
    rules = {n: r for n, r in _resources("google_compute_firewall").items() if _opens(r, 6443)}
    assert rules, "no rule opens 6443: workers cannot join"
    for name, rule in rules.items():
        assert _tags(rule) == {"local.control_plane_tag"}, f"rule {name} opens 6443 beyond the control plane"
        assert _plain(rule["source_ranges"]) == "local.internal_ranges"
    cp = _resources("google_compute_instance")["control_plane"]
    assert "local.control_plane_tag" in {_plain(t) for t in cp["tags"]}
    for worker_tag in _resources("google_compute_instance")["worker"]["tags"]:
        assert _plain(worker_tag) != "local.control_plane_tag"


def test_operator_range_reaches_nothing_but_ssh():
    for name, rule in _resources("google_compute_firewall").items():
        if "var.operator_cidr" in str(rule.get("source_ranges")):
            assert _ports(rule) == {"22"}, f"rule {name} lets the operator range reach {_ports(rule)}"


@pytest.mark.parametrize("value", ["0.0.0.0/0", "1.2.3.4/0", "::/0", "203.0.113.7", "203.0.113.7/33", ""])
def test_operator_cidr_world_or_invalid_is_refused_naming_the_fix(tmp_path, value):
    tf, work = _locals_module(tmp_path)
    result = _apply(tf, work, tmp_path, operator_cidr=value)
    assert result.returncode != 0
    assert 'variable "operator_cidr"' in result.stderr, result.stderr
    assert "/32" in result.stderr, "the message must show the fix: the operator's own address"


def test_wide_operator_cidr_is_applied_with_a_warning(tmp_path):
    tf, work = _locals_module(tmp_path)
    result = _apply(tf, work, tmp_path, operator_cidr="10.0.0.0/8")
    assert result.returncode == 0, result.stderr
    assert "wider than /16" in result.stdout + result.stderr


def test_narrow_operator_cidr_gets_no_warning(tmp_path):
    tf, work = _locals_module(tmp_path)
    result = _apply(tf, work, tmp_path, operator_cidr="203.0.113.0/24")
    assert result.returncode == 0, result.stderr
    assert "wider than /16" not in result.stdout + result.stderr
