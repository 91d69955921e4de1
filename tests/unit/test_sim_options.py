"""rap.sim.options: every bad option is one line naming it and the fix; good ones parse."""

from __future__ import annotations

import json

import pytest

from rap.sim.options import SimOptionError, parse_args, parse_options
from rap.sim.run import main


@pytest.mark.parametrize("kwargs,needle", [
    ({"nodes": "x"}, "--nodes: 'x' is not a whole number"),
    ({"nodes": "1"}, "--nodes: must be 2..5000"),
    ({"nodes": "10", "overloaded": "10"}, "--overloaded: must be fewer than --nodes (10)"),
    ({"overloaded": "-1"}, "--overloaded: must be 0 or more"),
    ({"after": "0"}, "--after: must be in (0, 3600] seconds"),
    ({"after": "soon"}, "--after: 'soon' is not a number"),
    ({"policies": "rap,maglev"}, "--policies: unknown maglev; choose from round-robin, rap, rap-adaptive, "
                                 "least-request, rap-view or rap-adaptive-view"),
    ({"view_nodes": "-1"}, "--view-nodes: must be 0..1000, got -1"),
    ({"policies": "rap,rap"}, "--policies: 'rap,rap' names one twice"),
    ({"scenarios": "huge"}, "--scenarios: unknown huge"),
    ({"seed": "1.5"}, "--seed: '1.5' is not a whole number"),
    ({"overhead_ms": "-1"}, "--overhead-ms: must be >= 0 ms"),
    ({"http_cpu_ms": "nan"}, "--http-cpu-ms: must be >= 0 ms"),
])
def test_bad_option_is_one_line_naming_it(kwargs, needle):
    with pytest.raises(SimOptionError) as e:
        parse_options(**kwargs)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_results_folders_are_checked(tmp_path):
    with pytest.raises(SimOptionError, match=r"--validate: .* has no summary.json; give the folder"):
        parse_options(validate=str(tmp_path))
    (tmp_path / "summary.json").write_text(json.dumps({}))
    with pytest.raises(SimOptionError, match="give one of them"):
        parse_options(validate=str(tmp_path), calibrate=str(tmp_path))
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    with pytest.raises(SimOptionError, match="--out: .* exists and is not an empty folder"):
        parse_options(out=str(full))


def test_defaults_and_good_values():
    o = parse_args([])
    assert o.scenarios == ("bench", "large") and len(o.policies) == 6 and o.view_nodes == 32
    assert o.large.nodes == 500 and o.large.overloaded == 50
    o = parse_args(["--nodes", "40", "--policies", "rap-adaptive,rap", "--seed", "7"])
    assert o.large.nodes == 40 and o.large.overloaded == 39  # the default 50 is cut to fewer than the nodes
    assert o.policies == ("rap", "rap-adaptive")  # the report's order
    assert o.seed == 7


def test_main_prints_one_line_and_exits_2(capsys):
    assert main(["--nodes", "many"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --nodes: 'many' is not a whole number\n"


def test_validate_reports_a_scenario_missing_from_the_run(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"scenarios": {"geo": {}}}))
    assert main(["--validate", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "the run has no 'rates' scenario" in capsys.readouterr().err
