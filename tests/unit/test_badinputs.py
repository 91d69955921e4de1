"""Every bad input in rap.badinputs gets one clear message, the docs' table is today's, nothing is left out.

The cases run the real commands (``python3 -m invoke ...``) in subprocesses, so this module takes a few
seconds; every command fails in option parsing, before anything is built or started.
"""

from __future__ import annotations

import json

import pytest
from invoke import Collection

import tasks
from rap import badinputs
from rap.config import DECISION_FIELDS
from rap.paths import REPO

DOC = REPO / "docs" / "reliability.md"
SCHEMA = REPO / "rap" / "schemas" / "vector.schema.json"

# Options with nothing to refuse: any value is taken as given, or it is checked by the tool it is handed to.
UNCHECKED = {
    ("test-proxy", "run"): "a go test -run regexp: go test reports a bad one",
    ("down", "yes"): "a flag",
}


@pytest.fixture(scope="module")
def outcomes():
    return badinputs.run()


def test_every_bad_input_is_one_clear_message(outcomes):
    defects = [f"{o.case.where} {o.case.given}: {o.error} ({o.message[:200]})" for o in outcomes if o.error]
    assert not defects, "\n".join(defects)


def test_the_table_in_the_docs_is_what_the_code_gives(outcomes):
    shown = badinputs.block_of(DOC.read_text())
    assert shown == badinputs.table(outcomes), "run `python3 -m rap.badinputs --write docs/reliability.md`"


def _value_options() -> set[tuple[str, str]]:
    """(task, option) for every option of every task that takes a value (flags have nothing to refuse)."""
    found = set()
    for name in Collection.from_module(tasks).task_names:
        task = Collection.from_module(tasks)[name]
        for arg in task.get_arguments():
            if arg.kind is not bool:
                found.add((name, arg.name.replace("_", "-")))
    return found


def test_every_option_that_takes_a_value_is_tried():
    tried = {(c.argv[0], a[2:]) for c in badinputs.cases() if c.argv for a in c.argv if a.startswith("--")}
    missing = sorted(_value_options() - tried - set(UNCHECKED))
    assert not missing, f"options no case tries: {missing}"


def test_every_rap_setting_is_tried():
    tried = {k for c in badinputs.cases() for k, _ in c.config}
    assert {f.name for f in DECISION_FIELDS} <= tried
    assert any("--rtt-port" in c.argv for c in badinputs.cases())  # the monitor's port: a deploy option


def _property_names(schema) -> set[str]:
    names = set()
    if isinstance(schema, dict):
        names |= set(schema.get("properties", {}))
        for v in schema.values():
            names |= _property_names(v)
    elif isinstance(schema, list):
        for v in schema:
            names |= _property_names(v)
    return names


def _named(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {n for v in value.values() for n in _named(v)}
    if isinstance(value, list):
        return {n for v in value for n in _named(v)}
    return set()


def test_every_vector_field_is_tried():
    tried = {k for c in badinputs.cases() for k, _ in c.config}
    for c in badinputs.cases():
        for path, value in c.vector:
            tried |= {p for p in path if isinstance(p, str)} | _named(value)
    missing = sorted(_property_names(json.loads(SCHEMA.read_text())) - tried)
    assert not missing, f"vector fields no case tries: {missing}"


@pytest.mark.parametrize("code, message, why", [
    (0, "", "accepted"),
    (1, "Traceback (most recent call last):\n  File ...", "one line"),
    (1, "error: something else went wrong", "does not name"),
    (1, "--nodes: must be 1..9", "'error: ...'"),
])
def test_the_judge_refuses_what_is_not_one_clear_message(code, message, why):
    case = badinputs.Case("invoke local-up", "--nodes 0", "--nodes", argv=("local-up", "--nodes", "0"))
    assert why in badinputs._judge(case, code, message)
    assert badinputs._judge(case, 1, "error: --nodes: must be 1..9, got 0") == ""
