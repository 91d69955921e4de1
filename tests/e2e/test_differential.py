"""The differential test: rap.go and the Python reference on the same random vectors.

rap.vectorgen writes vectors whose every expect is the Python reference's
answer; the Go harness (rap_patch/vectors_test.go, TestRAPVectors) replays
them on rap.go through the same go test run as `invoke test-proxy`
(rap.build.gotest, here with RAP_VECTORS_DIR pointing at the generated set).
One set comes from a fixed seed, one from a seed drawn per run (its value is
in the test id; set RAP_DIFF_SEED to replay it). A vector on which the two
disagree is copied to build/differential/seed-S/ for reproduction
(``rap.build.gotest.test_proxy(vectors_dir=..., run="TestRAPVectors", verbose=True)``
replays a folder).

Slow: the first go test run compiles the package (a warm ~/.cache/rap makes
it tens of seconds), each further run only relinks.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import pytest

from rap import paths, vectorgen
from rap.build import BuildError, gotest, toolchain

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DECISIONS = 10_000
FIXED_SEED = 20260101
RANDOM_SEED = int(os.environ.get("RAP_DIFF_SEED") or random.SystemRandom().randrange(2**32))
KEPT = paths.BUILD_DIR / "differential"

_SUMMARY = re.compile(r"RAP vectors: (\d+) vectors, (\d+) requests, (\d+) vectors failed")
_MISMATCH = re.compile(r"(?P<vector>[a-z0-9-]+): request (?P<request>\d+) \(step (?P<step>\d+)\): "
                       r"expected (?P<expected>\S+), got (?P<actual>.+?)\s*$", re.MULTILINE)


def _go_or_fail() -> None:
    try:
        toolchain.find_go()
    except BuildError as exc:  # the differential test is worthless without Go: fail, do not skip
        pytest.fail(str(exc))


def _run_go(directory: Path, capfd) -> tuple[bool, str]:
    """(passed, output) of TestRAPVectors on ``directory``."""
    _go_or_fail()
    capfd.readouterr()
    try:
        gotest.test_proxy(vectors_dir=directory, run="^TestRAPVectors$", verbose=True)
        passed = True
    except BuildError:
        passed = False
    out = capfd.readouterr()
    return passed, out.out + out.err


def _summary(output: str) -> tuple[int, int, int]:
    found = _SUMMARY.findall(output)
    assert found, f"the Go harness printed no summary line:\n{output[-3000:]}"
    return tuple(map(int, found[-1]))


def _keep(directory: Path, names: set[str], seed: int) -> Path:
    kept = KEPT / f"seed-{seed}"
    kept.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(directory / f"{name}.json", kept)
    return kept


@pytest.fixture(scope="module")
def fixed_set(tmp_path_factory) -> vectorgen.Summary:
    return vectorgen.write_vectors(tmp_path_factory.mktemp("fixed"), DECISIONS, FIXED_SEED)


@pytest.mark.parametrize("seed", [FIXED_SEED, RANDOM_SEED], ids=[f"fixed-{FIXED_SEED}", f"random-{RANDOM_SEED}"])
def test_rap_go_answers_every_generated_request_as_the_reference(seed, fixed_set, tmp_path, capfd):
    generated = fixed_set if seed == FIXED_SEED else vectorgen.write_vectors(tmp_path, DECISIONS, seed)
    passed, output = _run_go(generated.out, capfd)
    mismatches = [m.groupdict() for m in _MISMATCH.finditer(output)]
    if mismatches:
        kept = _keep(generated.out, {m["vector"] for m in mismatches}, seed)
        shown = "\n".join(f"{m['vector']}: request {m['request']} (step {m['step']}): "
                          f"expected {m['expected']}, got {m['actual']}" for m in mismatches[:20])
        pytest.fail(f"seed {seed}: {len(mismatches)} mismatches between rap.go and the reference; "
                    f"the vectors are in {kept}:\n{shown}")
    assert passed, f"seed {seed}: go test failed without a mismatch line:\n{output[-3000:]}"
    vectors, requests, failed = _summary(output)
    assert (vectors, failed) == (generated.vectors, 0)
    assert requests == generated.decisions >= DECISIONS


def _corrupt_one(directory: Path, rng: random.Random) -> dict:
    """Change one expect in one vector to another endpoint's address; what the harness must report."""
    files = sorted(directory.glob("*.json"))
    while True:
        path = rng.choice(files)
        data = json.loads(path.read_text())
        requests = [s for s in data["steps"] if "request" in s]
        answered = [i for i, s in enumerate(requests) if "expect" in s]
        others = {s["expect"] for s in requests if "expect" in s}
        if answered and len(others) >= 2:
            break
    k = rng.choice(answered)
    step = requests[k]
    right = step["expect"]
    step["expect"] = rng.choice(sorted(others - {right}))
    path.write_text(json.dumps(data))
    return {"vector": data["name"], "request": str(k), "step": str(data["steps"].index(step)),
            "expected": step["expect"], "actual": right}


def test_the_go_harness_reports_exactly_one_corrupted_expect(fixed_set, tmp_path, capfd):
    copy = tmp_path / "corrupt"
    shutil.copytree(fixed_set.out, copy)
    wanted = _corrupt_one(copy, random.Random(FIXED_SEED))
    passed, output = _run_go(copy, capfd)
    assert not passed
    assert [m.groupdict() for m in _MISMATCH.finditer(output)] == [wanted]
    assert _summary(output) == (fixed_set.vectors, fixed_set.decisions, 1)
