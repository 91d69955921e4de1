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
import sys
import tempfile
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


def _run_go(directory: Path) -> tuple[bool, str]:
    """(passed, output) of TestRAPVectors on ``directory``; the output is also echoed for pytest to show."""
    _go_or_fail()
    with tempfile.TemporaryFile("w+") as log:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)  # go test writes to the inherited descriptors, not to sys.stdout
        os.dup2(log.fileno(), 2)
        try:
            gotest.test_proxy(vectors_dir=directory, run="^TestRAPVectors$", verbose=True)
            passed = True
        except BuildError:
            passed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        log.seek(0)
        output = log.read()
    print("\n".join(line for line in output.splitlines() if "--- PASS" not in line and "=== RUN" not in line))
    return passed, output


def _mismatches(output: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in _MISMATCH.finditer(output)]


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


@pytest.fixture(scope="module")
def fixed_run(fixed_set) -> tuple[bool, str]:
    return _run_go(fixed_set.out)


@pytest.mark.parametrize("seed", [FIXED_SEED, RANDOM_SEED], ids=[f"fixed-{FIXED_SEED}", f"random-{RANDOM_SEED}"])
def test_rap_go_answers_every_generated_request_as_the_reference(seed, fixed_set, fixed_run, tmp_path):
    if seed == FIXED_SEED:
        generated, (passed, output) = fixed_set, fixed_run
    else:
        generated = vectorgen.write_vectors(tmp_path, DECISIONS, seed)
        passed, output = _run_go(generated.out)
    mismatches = _mismatches(output)
    if mismatches:
        kept = _keep(generated.out, {m["vector"] for m in mismatches}, seed)
        shown = "\n".join(f"{m['vector']}: request {m['request']} (step {m['step']}): "
                          f"expected {m['expected']}, got {m['actual']}" for m in mismatches[:20])
        pytest.fail(f"seed {seed}: {len(mismatches)} mismatches between rap.go and the reference in "
                    f"{len({m['vector'] for m in mismatches})} vectors, kept in {kept}:\n{shown}")
    assert passed, f"seed {seed}: go test failed without a mismatch line:\n{output[-3000:]}"
    vectors, requests, failed = _summary(output)
    assert (vectors, failed) == (generated.vectors, 0)
    assert requests == generated.decisions >= DECISIONS


def _corrupt_one(directory: Path, rng: random.Random, spare: set[str]) -> dict[str, str]:
    """Change one expect, in a vector not named in ``spare``, to another answer of the same vector."""
    files = sorted(p for p in directory.glob("*.json") if p.stem not in spare)
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


def test_the_go_harness_reports_exactly_one_corrupted_expect(fixed_set, fixed_run, tmp_path):
    # Measured against the untouched set's own run, so this holds whether or not the two implementations agree.
    before = _mismatches(fixed_run[1])
    copy = tmp_path / "corrupt"
    shutil.copytree(fixed_set.out, copy)
    wanted = _corrupt_one(copy, random.Random(FIXED_SEED), spare={m["vector"] for m in before})
    passed, output = _run_go(copy)
    assert not passed
    assert [m for m in _mismatches(output) if m not in before] == [wanted]
    _, _, failed_before = _summary(fixed_run[1])
    assert _summary(output) == (fixed_set.vectors, fixed_set.decisions, failed_before + 1)
