"""rap.localcluster.metrics.sampler: CPU rates over a window and memory, from fake cgroup counters."""

from __future__ import annotations

from rap.localcluster import metrics as m

from .metrics_fakes import ALL, api, fake, run  # noqa: F401 (api and fake are fixtures)


def test_no_usage_before_two_samples(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    api.sampler.tick()
    code, body = api.get(m.PREFIX + "/pods", {})
    assert code == 200 and body["items"] == []


def test_cpu_is_a_rate_over_the_window(api, fake):
    fake.cpu = {name: 0 for name in ALL}
    run(fake, api.sampler, 8, ALL)
    u = api.sampler.usage("rap/node-1/pod-1-1")
    assert u.nanocores == 500_000_000 and u.window_ns == 5 * 10**9
    assert u.timestamp == 1_700_000_000 + fake.t


def test_window_follows_a_change_in_load(api, fake):
    fake.cpu = {"rap/node-1": 0}
    run(fake, api.sampler, 10, {"rap/node-1": 0.2})
    run(fake, api.sampler, 5, {"rap/node-1": 0.8})
    assert api.sampler.usage("rap/node-1").nanocores == 800_000_000


def test_counter_reset_starts_over(api, fake):
    fake.cpu = {"rap/node-1": 10**12}
    run(fake, api.sampler, 3, {"rap/node-1": 0.5})
    fake.cpu["rap/node-1"] = 0  # group removed and made again
    api.sampler.tick()
    assert api.sampler.usage("rap/node-1") is None


def test_missing_cgroup_is_left_out(api, fake):
    fake.cpu = {"rap/node-1": 0}
    run(fake, api.sampler, 3, {"rap/node-1": 0.5})
    code, body = api.get(m.PREFIX + "/nodes", {})
    assert [i["metadata"]["name"] for i in body["items"]] == ["node-1"]
