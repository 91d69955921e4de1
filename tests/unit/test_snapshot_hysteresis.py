"""The hot flags set when a snapshot is swapped in (docs/algorithm.md, "Hysteresis")."""

from rap.config import RapConfig
from rap.policies import Rap
from rap.snapshot import EMPTY, Snapshot, Usage

THRESHOLDS = {"cpu_threshold": 0.8, "mem_threshold": 0.9, "hysteresis": 0.1}


def swap(snap: Snapshot, previous: Snapshot = EMPTY) -> Snapshot:
    return snap.swapped_in_over(previous, **THRESHOLDS)


def test_over_an_empty_snapshot_hot_is_at_or_above_the_threshold():
    snap = swap(Snapshot(pods={"p1": Usage(0.8, 0, 0), "p2": Usage(0.79, 0.89, 0), "p3": Usage(0, 0.9, 0)},
                         nodes={"n1": Usage(1.5, 0, 0), "n2": Usage(0.1, 0.1, 0)}))
    assert snap.hot_pods == {"p1", "p3"} and snap.hot_nodes == {"n1"}


def test_a_hot_item_stays_hot_until_below_the_threshold_minus_the_hysteresis():
    first = swap(Snapshot(pods={"p": Usage(0.85, 0, 0), "q": Usage(0, 0.95, 0)}))
    # 0.8 - 0.1 and 0.9 - 0.1 as floats: 0.7000000000000001 and 0.8
    second = swap(Snapshot(pods={"p": Usage(0.7000000000000001, 0, 1), "q": Usage(0, 0.7999, 1)}), first)
    assert second.hot_pods == {"p"}
    third = swap(Snapshot(pods={"p": Usage(0.7, 0, 2), "q": Usage(0, 0.85, 2)}), second)
    assert third.hot_pods == set()  # p just below; q was not hot, so 0.85 < 0.9 is not either


def test_an_item_missing_from_the_new_snapshot_is_not_hot_and_forgets_it_was():
    first = swap(Snapshot(nodes={"n": Usage(0.9, 0, 0)}))
    gone = swap(Snapshot(), first)
    assert gone.hot_nodes == set()
    back = swap(Snapshot(nodes={"n": Usage(0.75, 0, 2)}), gone)
    assert back.hot_nodes == set()  # no margin: it was not hot in the snapshot before


def test_swapping_keeps_the_samples_and_leaves_the_original_alone():
    snap = Snapshot(pods={"p": Usage(0.9, 0, 0)})
    swapped = swap(snap)
    assert swapped.pods == snap.pods and snap.hot_pods == frozenset() and swapped.hot_pods == {"p"}


def test_rap_swaps_each_snapshot_in_over_its_current_one_with_its_settings():
    rap = Rap("node-a", RapConfig(cpu_threshold=0.5, hysteresis=0.2))
    rap.update_snapshot(Snapshot(pods={"p": Usage(0.5, 0, 0)}))
    kept = rap.update_snapshot(Snapshot(pods={"p": Usage(0.31, 0, 1)}))  # >= 0.5 - 0.2
    assert kept.hot_pods == {"p"}
    assert rap.update_snapshot(Snapshot(pods={"p": Usage(0.29, 0, 2)})).hot_pods == set()
