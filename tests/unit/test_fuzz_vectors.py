"""Hypothesis over the vector loader: a broken vector file is one VectorError naming the file and the field.

Each example takes a real vector and breaks it once (a key removed, a value of
another type, an unknown key, a non-finite number) or is not a vector at all
(any JSON, any bytes). Whatever it is, load_vector either accepts it (the
change kept it valid, and then it replays without an exception) or raises
VectorError with one line ``<file>: $<path>: <what is wrong>``, where the path
leads into the document; never a traceback from inside jsonschema, json or
the balancer.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rap.paths import VECTORS_DIR
from rap.vectors import VectorError, load_vector, run_vector

FILES = sorted(VECTORS_DIR.glob("*.json"))
ORIGINALS = {p.stem: json.loads(p.read_text()) for p in FILES}
NAMES = sorted(ORIGINALS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, at + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, at + (i,))
    return out


def _parent(doc: Any, at: tuple) -> Any:
    for part in at[:-1]:
        doc = doc[part]
    return doc


@st.composite
def broken_vectors(draw) -> tuple[str, Any, tuple]:
    """(file name, document, path of the change): one vector changed in one place."""
    name = draw(st.sampled_from(NAMES))
    doc = copy.deepcopy(ORIGINALS[name])
    at = draw(st.sampled_from(_paths(doc)[1:]))
    parent, key = _parent(doc, at), at[-1]
    how = draw(st.sampled_from(["delete", "replace", "unknown-key", "wrap", "non-finite"]))
    if how == "delete":
        del parent[key]
    elif how == "replace":
        parent[key] = draw(json_values)
    elif how == "unknown-key" and isinstance(parent[key], dict):
        parent[key][draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    elif how == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return name, doc, at


def _write(tmp: Path, name: str, doc: Any) -> Path:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(doc))  # NaN and inf are written as Python's json writes them: NaN, Infinity
    return path


_MESSAGE = re.compile(r"^(?P<file>.+?\.json): (?P<rest>.+)$")


def _resolves(doc: Any, json_path: str) -> bool:
    """Whether ``$.a[0]["10.0.1.1"].b`` leads to a value of ``doc``."""
    parts = re.findall(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]', json_path[1:])
    rebuilt = "".join(f".{a}" if a else f"[{b}]" if b else f"[{c}]" for a, b, c in parts)
    assert "$" + rebuilt == json_path, f"not a JSON path: {json_path}"
    for key, index, quoted in parts:
        step = key or (int(index) if index else json.loads(quoted))
        try:
            doc = doc[step]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _check(path: Path, doc: Any) -> None:
    try:
        vector = load_vector(path)
    except VectorError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 1000 + len(str(path)), message  # an enum lists its values
        m = _MESSAGE.match(message)
        assert m and m["file"] == str(path), message
        rest = m["rest"]
        if rest.startswith("$"):
            json_path = rest.split(": ", 1)[0].split(" + ")[0]  # "$.config.w_cpu + w_mem + w_net: ..."
            assert _resolves(doc, json_path), message
        else:
            assert rest.startswith(("not valid JSON", "not usable JSON", "not UTF-8")), message
        return
    run_vector(vector)  # accepted: it must replay (mismatches are fine, exceptions are not)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(broken_vectors())
@example(("local-preference-basic", {**ORIGINALS["local-preference-basic"], "steps": [{"request": {"client": "192.0.2.10", "at": 1}}]}, ("steps",)))  # was "is not valid under any of the given schemas", naming no field
def test_a_vector_broken_in_one_place_is_one_clear_error(tmp_path, case):
    name, doc, _ = case
    _check(_write(tmp_path, name, doc), doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_any_json_is_a_vector_or_one_clear_error(tmp_path, doc):
    _check(_write(tmp_path, "any", doc), doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64))
@example(b"\xff\xfe{")  # was a UnicodeDecodeError
@example(b"[" * 100_000)  # was a RecursionError from json
@example(b"1" * 5000)  # an integer past Python's 4300-digit limit: was a bare ValueError
def test_any_bytes_are_a_vector_or_one_clear_error(tmp_path, raw):
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    with pytest.raises(VectorError, match=rf"^{re.escape(str(path))}: "):
        load_vector(path)


@pytest.mark.parametrize("value, shown", [(math.nan, "NaN"), (math.inf, "Infinity"), (1e400, "1e400")])
def test_a_non_finite_number_names_its_field(tmp_path, value, shown):  # NaN was accepted as a time
    doc = copy.deepcopy(ORIGINALS["local-preference-basic"])
    doc["metrics"]["pods"]["10.0.1.1"]["cpu"] = value
    path = tmp_path / "local-preference-basic.json"
    path.write_text(json.dumps(doc).replace("Infinity", shown))
    with pytest.raises(VectorError, match=re.escape(f'$.metrics.pods["10.0.1.1"].cpu: {shown} is not a JSON number')):
        load_vector(path)


def test_a_step_of_no_kind_lists_the_kinds(tmp_path):
    doc = copy.deepcopy(ORIGINALS["local-preference-basic"])
    doc["steps"][0] = {"request": doc["steps"][0]["request"]}
    path = _write(tmp_path, "local-preference-basic", doc)
    with pytest.raises(VectorError, match=re.escape("$.steps[0]: keys ['request'] match no single kind; it must "
                                                    "have the keys of exactly one of: request+expect |")):
        load_vector(path)


def test_a_bad_field_inside_a_step_is_named(tmp_path):
    doc = copy.deepcopy(ORIGINALS["local-preference-basic"])
    doc["steps"][0]["request"]["at"] = -1
    path = _write(tmp_path, "local-preference-basic", doc)
    with pytest.raises(VectorError, match=re.escape("$.steps[0].request.at: -1 is less than the minimum of 0")):
        load_vector(path)


def test_a_missing_file_and_a_folder_are_vector_errors(tmp_path):
    with pytest.raises(VectorError, match="cannot read"):
        load_vector(tmp_path / "absent.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(VectorError, match="cannot read"):
        load_vector(tmp_path / "dir.json")
