"""`invoke scale`'s options: both parts parsed before anything runs, one folder for both, one-line errors."""

from __future__ import annotations

import pytest

from rap.scale import task
from rap.scale.options import ScaleOptionError


def test_both_parts_go_under_one_folder(tmp_path):
    part, sim, kwok, root = task.parse(out=str(tmp_path / "r"))
    assert part == "both" and root == tmp_path / "r"
    assert sim.out == root / "sim" and kwok.out == root / "kwok"
    assert kwok.nodes == (100, 300, 1000) and sim.large.nodes == 500 and sim.large.overloaded == 50


def test_quick_reaches_both_parts(tmp_path):
    _, sim, kwok, _ = task.parse(quick=True, out=str(tmp_path / "q"))
    assert sim.quick and kwok.nodes == (50,)


@pytest.mark.parametrize("part, has_sim, has_kwok", [("sim", True, False), ("kwok", False, True)])
def test_one_part_parses_only_its_options(tmp_path, part, has_sim, has_kwok):
    _, sim, kwok, _ = task.parse(part=part, out=str(tmp_path / part))
    assert (sim is not None, kwok is not None) == (has_sim, has_kwok)


@pytest.mark.parametrize("raw, error, names", [
    ({"part": "all"}, task.ScaleTaskError, "--part"),
    ({"sim_nodes": "1"}, task.ScaleTaskError, "^--sim-nodes: must be 2..5000"),
    ({"sim_nodes": "20", "overloaded": "20"}, task.ScaleTaskError, "--overloaded: must be fewer than --sim-nodes"),
    ({"nodes": "300,100"}, ScaleOptionError, "--nodes"),
    ({"monitor": "central"}, ScaleOptionError, "--monitor"),
])
def test_a_bad_option_of_either_part_stops_before_anything_runs(tmp_path, raw, error, names):
    with pytest.raises(error, match=names):
        task.parse(out=str(tmp_path / "bad"), **raw)


def test_a_folder_with_results_is_refused(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(task.ScaleTaskError, match="--out"):
        task.parse(out=str(tmp_path))


def test_the_help_states_the_defaults_the_parts_use(tmp_path):
    from rap.sim.scenarios import QUICK_LARGE, LargeShape

    full, quick = LargeShape(), QUICK_LARGE
    assert task.SIM_DEFAULTS == {"sim_nodes": (full.nodes, quick.nodes), "overloaded": (full.overloaded,
                                                                                        quick.overloaded)}
    _, sim, kwok, _ = task.parse(out=str(tmp_path / "d"))
    h = task.option_help()
    assert f"(default {','.join(map(str, kwok.nodes))} (--quick: 50))" in h["nodes"]
    assert f"(default {','.join(kwok.monitors)})" in h["monitor"]
    assert f"(default {sim.large.nodes} (--quick: {quick.nodes}))" in h["sim_nodes"]
