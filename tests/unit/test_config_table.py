"""Everything that states RAP's configuration agrees with its one table, rap/schemas/rap-config.json.

RapConfig (fields, defaults, ranges), the deploy options, the Python proxy's
options, the deploy task's help, the vector schema and the docs' tables are
each checked against the JSON as read here, not through rap.config, so a copy
that drifts from the table fails, and so does rap.config misreading it.
(rap.go is checked against the same table by rap_patch's Go tests.)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re

import pytest

from rap import config_docs
from rap.config import DEFAULT_RTT_PORT, ConfigError, MonitorConfig, RapConfig, check_rtt_port
from rap.deploy import spec
from rap.deploy.options import DeployError, parse_options
from rap.paths import REPO
from rap.pyproxy import cli

TABLE = json.loads((REPO / "rap" / "schemas" / "rap-config.json").read_text())
ROWS = TABLE["fields"]
DECISION = [r for r in ROWS if r["scope"] == "decision"]
MONITOR = [r for r in ROWS if r["scope"] == "monitor"]
ROW_KEYS = {"name", "env", "option", "scope", "type", "unit", "default", "default_factor_of",
            "min", "max", "min_open", "max_open", "choices", "help"}


def num(x) -> str:
    return f"{x:g}"


def resolved_defaults(rows) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        factor = r.get("default_factor_of")
        out[r["name"]] = factor[1] * out[factor[0]] if factor else r["default"]
    return out


def default_text(r) -> str:
    factor = r.get("default_factor_of")
    if factor:
        return f"{num(factor[1])} × {factor[0]}"
    return r["default"] if "choices" in r else num(r["default"])


def allowed(r) -> str:
    """The range as the docs and help write it: > 0, >= 0, (0, 1], 1..65535; a choice lists its values."""
    if "choices" in r:
        return ", ".join(r["choices"])
    lo, hi = r.get("min"), r.get("max")
    lo_open, hi_open = r.get("min_open", False), r.get("max_open", False)
    if lo is None or hi is None:
        op, bound, is_open = (">", lo, lo_open) if hi is None else ("<", hi, hi_open)
        return f"{op if is_open else op + '='} {num(bound)}"
    if r["type"] == "integer" and not (lo_open or hi_open):
        return f"{num(lo)}..{num(hi)}"
    return "([" [not lo_open] + f"{num(lo)}, {num(hi)}" + ")]"[not hi_open]


def probes(r) -> list[tuple[float | str, bool]]:
    """Values at and around each end of the row's range (a choice: each value and near misses),
    and whether the table allows them."""
    if "choices" in r:
        return [(c, True) for c in r["choices"]] + [(r["choices"][0].upper(), False), ("fast", False)]
    step = 1 if r["type"] == "integer" else 1e-3
    out = []
    if "min" in r:
        out += [(r["min"], not r.get("min_open", False)), (r["min"] - step, False), (r["min"] + step, True)]
    if "max" in r:
        out += [(r["max"], not r.get("max_open", False)), (r["max"] + step, False), (r["max"] - step, True)]
    if r["type"] == "integer":
        out.append((r["default"] + 0.5, False))
    return out


def probe_cases(rows):
    return [pytest.param(r, v, ok, id=f"{r['name']}={v}") for r in rows for v, ok in probes(r)]


# ---- the table itself ----

def test_every_row_is_complete_and_its_default_is_allowed():
    names = []
    for r in ROWS:
        assert set(r) <= ROW_KEYS, f"{r['name']}: keys nobody reads: {sorted(set(r) - ROW_KEYS)}"
        assert {"name", "env", "option", "scope", "type", "unit", "default", "help"} <= set(r), r["name"]
        assert r["env"] == "RAP_" + r["name"].upper() and r["scope"] in ("decision", "monitor")
        assert r["type"] in ("number", "integer", "string")
        if r["type"] == "string":
            assert r["choices"] and r["default"] in r["choices"], f"{r['name']}: default not among the choices"
            assert not {"min", "max", "default_factor_of"} & set(r), f"{r['name']}: a choice has no range"
            names.append(r["name"])
            continue
        assert "choices" not in r, f"{r['name']}: choices on a {r['type']} row"
        if r["default"] is None:
            assert r["default_factor_of"][0] in names, f"{r['name']}: default_factor_of names an earlier row"
        names.append(r["name"])
    for name, value in resolved_defaults(ROWS).items():
        row = next(r for r in ROWS if r["name"] == name)
        if "choices" in row:
            continue  # checked above
        lo_ok = "min" not in row or (value > row["min"] if row.get("min_open") else value >= row["min"])
        hi_ok = "max" not in row or (value < row["max"] if row.get("max_open") else value <= row["max"])
        assert lo_ok and hi_ok, f"{name}: default {value} outside {allowed(row)}"
    for c in TABLE["constraints"]:
        assert c["kind"] == "sum_positive" and set(c["fields"]) <= set(names)


# ---- rap.config ----

def test_rap_config_has_the_decision_rows_and_their_defaults():
    assert [f.name for f in dataclasses.fields(RapConfig)] == [r["name"] for r in DECISION]
    assert RapConfig().as_dict() == resolved_defaults(DECISION)
    assert DEFAULT_RTT_PORT == next(r["default"] for r in MONITOR if r["name"] == "rtt_port")


@pytest.mark.parametrize("row, value, ok", probe_cases(DECISION))
def test_rap_config_allows_exactly_the_tables_range(row, value, ok):
    if ok:
        assert getattr(RapConfig(**{row["name"]: value}), row["name"]) == value
    else:
        with pytest.raises(ConfigError, match=rf"^{row['name']}: must be "):
            RapConfig(**{row["name"]: value})


@pytest.mark.parametrize("row", [r for r in DECISION if "choices" in r], ids=lambda r: r["name"])
def test_a_bad_choice_names_the_field_and_the_choices(row):
    with pytest.raises(ConfigError) as exc:
        RapConfig.from_mapping({row["name"]: "fast"})
    assert str(exc.value) == f"{row['name']}: must be one of {', '.join(row['choices'])}, got 'fast'"
    with pytest.raises(DeployError) as exc:
        parse_options("rap:v1", **{row["option"].replace("-", "_"): "fast"})
    assert str(exc.value) == f"--{row['option']}: must be one of {', '.join(row['choices'])}, got 'fast'"


@pytest.mark.parametrize("row, value, ok", probe_cases(MONITOR))
def test_monitor_config_allows_exactly_the_tables_range(row, value, ok):
    if ok:
        assert getattr(MonitorConfig(**{row["name"]: value}), row["name"]) == value
    else:
        with pytest.raises(ConfigError, match=rf"^{row['name']}: must be "):
            MonitorConfig(**{row["name"]: value})


def test_monitor_config_has_the_monitor_rows_and_their_defaults():
    assert [f.name for f in dataclasses.fields(MonitorConfig)] == [r["name"] for r in MONITOR]
    assert MonitorConfig().as_dict() == {r["name"]: r["default"] for r in MONITOR}


@pytest.mark.parametrize("value, ok", [(1, True), (65535, True), (0, False), (65536, False), (80.5, False)])
def test_rtt_port_check_allows_exactly_the_tables_range(value, ok):
    if ok:
        assert check_rtt_port(value) == value
    else:
        with pytest.raises(ConfigError, match=r"^rtt_port: must be a TCP port in "):
            check_rtt_port(value)


@pytest.mark.parametrize("constraint", TABLE["constraints"], ids=lambda c: c["kind"])
def test_a_constraint_is_one_error_naming_its_fields(constraint):
    with pytest.raises(ConfigError) as exc:
        RapConfig(**{f: 0 for f in constraint["fields"]})
    assert str(exc.value) == f"{' + '.join(constraint['fields'])}: must be > 0 ({constraint['help']})"


# ---- invoke deploy's options and the container's environment ----

def test_deploy_options_are_the_tables():
    assert spec.OPTIONS == {r["name"]: (f"--{r['option']}", r["env"]) for r in ROWS}
    opts = parse_options("rap:v1")
    assert opts.rap.as_dict() == resolved_defaults(DECISION) and opts.rtt_port == DEFAULT_RTT_PORT
    env = [e["name"] for e in spec.rap_env(opts)]
    assert env == [r["env"] for r in DECISION] + ["RAP_NODE_NAME"] + [r["env"] for r in MONITOR]


@pytest.mark.parametrize("row, value, ok", probe_cases(ROWS))
def test_deploy_allows_exactly_the_tables_range(row, value, ok):
    param = row["option"].replace("-", "_")
    # the aggregated monitor needs the aggregator's image too (tests/unit/test_deploy_monitor.py)
    extra = {"aggregator_image": "rap/aggregator:v1"} if (param, str(value)) == ("monitor", "aggregator") else {}
    if ok:
        parse_options("rap:v1", **{param: str(value)}, **extra)
    else:
        with pytest.raises(DeployError, match=rf"^--{row['option']}: must be "):
            parse_options("rap:v1", **{param: str(value)}, **extra)


def load_tasks():
    spec_ = importlib.util.spec_from_file_location("rap_tasks_under_test", REPO / "tasks.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_deploy_task_has_one_option_per_row_with_the_tables_help():
    task = load_tasks().deploy
    helps = {arg.names[0]: arg.help for arg in task.get_arguments()}  # the flag as typed, without --
    for r in ROWS:
        assert r["option"] in helps, f"invoke deploy has no --{r['option']}"
        text = helps[r["option"]]
        assert text.startswith(f"{r['env']}: {r['help']}"), text
        assert allowed(r) in text and text.endswith(f"(default {default_text(r)})"), text


# ---- the Python proxy's options ----

def proxy_flag(r) -> str:
    return f"--rap-{r['name'].replace('_', '-')}" if r["scope"] == "decision" else f"--{r['option']}"


def test_python_proxy_has_one_option_per_row_with_the_tables_default_and_help():
    actions = {a.option_strings[0]: a for a in cli.build_parser()._actions if a.option_strings}
    for r in ROWS:
        action = actions[proxy_flag(r)]
        assert action.default == (None if r["scope"] == "decision" else r["default"])
        assert r["help"] in action.help and allowed(r) in action.help
        assert action.help.endswith(f"(default {default_text(r)})"), action.help


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "admin.kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return str(path)


@pytest.mark.parametrize("row, value, ok", probe_cases(ROWS))
def test_python_proxy_allows_exactly_the_tables_range(kubeconfig, capsys, row, value, ok):
    argv = ["--kubeconfig", kubeconfig, "--node", "node-1", "--bind-address", "10.213.0.11",
            proxy_flag(row), str(value)]
    if ok:
        cli.parse_args(argv)
    else:
        with pytest.raises(SystemExit):
            cli.parse_args(argv)
        assert f"{proxy_flag(row)}: " in capsys.readouterr().err


# ---- the vector schema ----

def test_vector_schema_config_is_the_decision_rows():
    schema = json.loads((REPO / "rap" / "schemas" / "vector.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert config["properties"] == {r["name"]: {"type": r["type"]} for r in DECISION}


# ---- the docs ----

def test_docs_tables_are_rendered_from_the_table():
    stale = [str(p.relative_to(REPO)) for p in config_docs.stale()]
    assert not stale, (f"{', '.join(stale)}: the rap-config table differs from rap/schemas/rap-config.json; "
                       f"run `{config_docs.REGENERATE}` and commit the result")


def test_algorithm_doc_rows_say_what_the_table_says():
    text = (REPO / "docs" / "algorithm.md").read_text()
    region = text.split("<!-- rap-config:begin algorithm -->")[1].split("<!-- rap-config:end -->")[0]
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \| [^|]+ \| `(\w+)` \|", region, re.M)}
    assert rows == {r["name"]: (default_text(r), allowed(r), r["env"]) for r in ROWS}
