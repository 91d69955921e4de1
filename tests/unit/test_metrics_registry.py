"""rap.localcluster.metrics.registry: the file naming the cgroups to measure, checked and re-read."""

from __future__ import annotations

import pytest

from rap.localcluster import metrics as m


@pytest.mark.parametrize("data, needle", [
    ([], "JSON object"),
    ({"nodes": {"node-1": 3}}, "'nodes'"),
    ({"pods": {"nonamespace": {"cgroup": "x"}}}, "namespace/name"),
    ({"pods": {"a/b": {"node": "n"}}}, "'cgroup'"),
])
def test_bad_registry_names_the_field(data, needle):
    with pytest.raises(m.RegistryError, match=needle):
        m.parse_registry(data)


def test_registry_is_reread_when_it_changes_and_keeps_last_good(tmp_path):
    path = tmp_path / "r.json"
    reg = m.RegistryFile(path)
    assert reg.get().nodes == {} and "no such file" in reg.error
    m.write_registry(path, {"node-1": "g/1"}, {})
    assert reg.get().nodes == {"node-1": "g/1"}
    m.write_registry(path, {"node-1": "g/1", "node-2": "g/2"}, {})
    assert set(reg.get().nodes) == {"node-1", "node-2"}
    path.write_text("{not json")
    assert set(reg.get().nodes) == {"node-1", "node-2"} and reg.error
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left
