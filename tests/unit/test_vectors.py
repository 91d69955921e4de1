import json
from pathlib import Path

import pytest

from rap.paths import VECTORS_DIR
from rap.vectors import VectorError, load_all, load_vector, run_all, run_vector

VECTOR_FILES = sorted(VECTORS_DIR.glob("*.json"))


def test_there_are_enough_vectors_covering_every_rule():
    vectors = load_all(VECTORS_DIR)
    assert len(vectors) >= 40
    covered = {rule for v in vectors for rule in v.data["rules"]}
    required = {
        "affinity", "blind", "local", "local-pod-overloaded", "local-node-overloaded",
        "scoring", "tie-break", "unmeasured", "stale", "all-overloaded", "churn",
    }
    assert required <= covered


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_reference_matches_vector(path):
    mismatches = run_vector(load_vector(path))
    assert not mismatches, "\n".join(map(str, mismatches))


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _valid() -> dict:
    return json.loads((VECTORS_DIR / "local-preference-basic.json").read_text())


def test_schema_violation_names_file_and_field(tmp_path):
    data = _valid()
    data["endpoints"][1]["port"] = "eighty"
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError) as err:
        load_vector(path)
    assert str(path) in str(err.value)
    assert "$.endpoints[1].port" in str(err.value)


def test_unknown_step_kind_is_rejected(tmp_path):
    data = _valid()
    data["steps"].append({"sleep": 3})
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.steps\[4\]"):
        load_vector(path)


def test_out_of_range_config_is_rejected_with_field(tmp_path):
    data = _valid()
    data["config"] = {"cpu_threshold": 1.5}
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.config\.cpu_threshold: must be in \(0, 1\]"):
        load_vector(path)


def test_time_going_back_is_rejected(tmp_path):
    data = _valid()
    data["steps"][2]["request"]["at"] = 0.5
    path = _write(tmp_path, data["name"], data)
    with pytest.raises(VectorError, match=r"\$\.steps\[2\]\.request\.at"):
        load_vector(path)


def test_name_must_match_file(tmp_path):
    path = _write(tmp_path, "other-name", _valid())
    with pytest.raises(VectorError, match=r"\$\.name"):
        load_vector(path)


def test_invalid_json_is_rejected(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(VectorError, match="not valid JSON"):
        load_vector(path)


def test_runner_reports_a_wrong_expectation(tmp_path):
    data = _valid()
    data["steps"][1]["expect"] = "10.0.3.1:8080"
    _write(tmp_path, data["name"], data)
    report = run_all(tmp_path)
    assert not report.ok
    [mismatch] = report.mismatches
    assert str(mismatch) == (
        "local-preference-basic: request 1 (step 1): expected 10.0.3.1:8080, got 10.0.1.2:8080"
    )


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(VectorError, match="no \\*.json vectors"):
        run_all(tmp_path)
