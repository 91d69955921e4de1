import pytest

from rap.config import ConfigError, RapConfig


def test_defaults_follow_the_design():
    cfg = RapConfig()
    assert (cfg.period_s, cfg.stale_after_s) == (5.0, 15.0)
    assert (cfg.cpu_threshold, cfg.mem_threshold) == (0.8, 0.9)
    assert (cfg.w_cpu, cfg.w_mem, cfg.w_net) == (0.5, 0.2, 0.3)
    assert cfg.mode == "adaptive"
    assert (cfg.hysteresis, cfg.rtt_per_conn_ms, cfg.eject_s) == (0.1, 10.0, 10.0)


def test_stale_after_defaults_to_three_periods():
    assert RapConfig(period_s=2).stale_after_s == 6


@pytest.mark.parametrize(
    "values, message",
    [
        ({"w_cpu": -0.1}, r"w_cpu: must be >= 0"),
        ({"w_cpu": 0, "w_mem": 0, "w_net": 0}, r"w_cpu \+ w_mem \+ w_net: must be > 0"),
        ({"cpu_threshold": 0}, r"cpu_threshold: must be in \(0, 1\]"),
        ({"mem_threshold": 1.01}, r"mem_threshold: must be in \(0, 1\]"),
        ({"period_s": 0}, r"period_s: must be > 0"),
        ({"stale_after_s": -1}, r"stale_after_s: must be > 0"),
        ({"w_net": "high"}, r"w_net: must be a number"),
        ({"w_net": True}, r"w_net: must be a number"),
        ({"weight": 1}, r"weight: unknown RAP setting"),
        ({"mode": "fast"}, r"^mode: must be one of adaptive, classic, got 'fast'$"),
        ({"mode": 1}, r"^mode: must be one of adaptive, classic, got 1$"),
        ({"hysteresis": 1}, r"hysteresis: must be in \[0, 1\)"),
        ({"rtt_per_conn_ms": 0}, r"rtt_per_conn_ms: must be > 0"),
        ({"eject_s": 0}, r"eject_s: must be > 0"),
    ],
)
def test_bad_values_name_the_field_and_range(values, message):
    with pytest.raises(ConfigError, match=message):
        RapConfig.from_mapping(values)


def test_threshold_of_one_is_allowed():
    assert RapConfig(cpu_threshold=1.0).cpu_threshold == 1.0
