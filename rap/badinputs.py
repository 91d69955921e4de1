"""The bad inputs the toolkit is tried with, and the one message each gets.

Each case gives one validated input a bad value: a command-line option (run
as the real command, ``python3 -m invoke TASK ...``, in a subprocess, so the
message is what a user sees, exit code included), a RAP setting (in a
vector's ``config``, which shares RapConfig with ``invoke deploy`` and the
Python proxy), or a field of a conformance vector (loaded by
rap.vectors.load_vector). ``python3 -m rap.badinputs`` runs them all and
prints the table; ``--write docs/reliability.md`` puts it between the
markers there. tests/unit/test_badinputs.py runs every case (each must be
one line that names its input, no traceback, a non-zero exit) and checks
that the table in the docs is the one the code gives today and that every
option, setting and vector field is tried at least once.

Every command case fails in option parsing, before anything is built,
started or created; a case that did not would be a bug the test reports
(each runs under a timeout).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rap.paths import REPO, VECTORS_DIR

BEGIN, END = "<!-- bad-inputs:begin (python3 -m rap.badinputs --write) -->", "<!-- bad-inputs:end -->"
CLI_TIMEOUT_S = 60.0
# `invoke up` cases also pass these, so that the one bad option is the first the check meets.
_UP_PROJECT = ("--project", "rap-check-1", "--plan")
_UP_OK = (*_UP_PROJECT, "--operator-cidr", "203.0.113.7/32")
_BASE_VECTOR = "local-preference-basic"
# `up` and `down` look for credentials before they read their options (without them nothing else can
# succeed); a placeholder token lets the options be checked. It is never sent: every case fails first.
_CLOUD_ENV = {"GOOGLE_OAUTH_ACCESS_TOKEN": "placeholder-never-sent"}


@dataclass(frozen=True)
class Case:
    """One bad input. ``names``: the text its message must contain (the option or the field)."""

    where: str  # "invoke local-up", "RAP setting", "vector"
    given: str  # the input as a user writes it
    names: str
    argv: tuple[str, ...] = ()  # a command: python3 -m invoke ARGV
    cloud: bool = False  # an `invoke up`/`down` case: run with a placeholder credential (see _CLOUD_ENV)
    config: tuple[tuple[str, Any], ...] = ()  # a RAP setting: the vector's config gets these
    vector: tuple[tuple[tuple[Any, ...], Any], ...] = ()  # a vector field: (path, value); value DELETE removes


DELETE = object()


@dataclass(frozen=True)
class Outcome:
    case: Case
    code: int | None  # the exit code (None: in-process, an exception was raised)
    message: str  # what was printed on stderr or raised, the temp path replaced by <file>
    error: str = ""  # why this outcome is not one clear message ("" when it is)


def _cli(task: str, *args: str, names: str | None = None, base: tuple[str, ...] = ()) -> Case:
    option = names or next((a for a in args if a.startswith("--")), task)
    cloud = task in ("up", "down")
    where = f"invoke {task}" + (" (with credentials)" if cloud else "")
    return Case(where, " ".join(args), option, argv=(task, *base, *args), cloud=cloud)


def _setting(name: str, value: Any, names: str | None = None) -> Case:
    return Case("RAP setting", f"{name} = {json.dumps(value)}", names or name, config=((name, value),))


def _field(path: tuple[Any, ...], value: Any, names: str) -> Case:
    from rap.vectors import json_path

    shown = json_path(path)
    given = f"{shown} removed" if value is DELETE else f"{shown} = {json.dumps(value)}"
    return Case("vector", given, names, vector=((path, value),))


# A vector fed through the aggregator's objects: the base vector with published instead of metrics.
_PUBLISHED_BASE = (
    (("metrics",), DELETE),
    (("wall_clock_at_0",), "2027-01-15T08:00:00Z"),
    (("published",), {"configmaps": {"rap-load-node-a": {"node": '{"name":"node-a"}', "pods": "{}"}},
                      "lease": {"metrics_timestamp": "2027-01-15T08:00:00Z"}}),
)


def _published(path: tuple[Any, ...], value: Any, names: str) -> Case:
    """A field of a vector with ``published``: the base vector turned into one, then ``path`` changed."""
    case = _field(path, value, names)
    return Case(case.where, f"(with published) {case.given}", names, vector=(*_PUBLISHED_BASE, (path, value)))


def cases() -> list[Case]:
    """Every case, in the order of the docs' table."""
    return [*_command_cases(), *_setting_cases(), *_vector_cases()]


def _command_cases() -> list[Case]:
    return [
        _cli("local-up", "--nodes", "0"), _cli("local-up", "--nodes", "three"),
        _cli("local-up", "--proxy", "ipvs"), _cli("local-up", "--proxy", "python", "--policy", "random",
                                                   names="--policy"),
        _cli("local-up", "--pods", "node-1=two"), _cli("local-up", "--pods", "node-4=1", names="node-4"),
        _cli("local-up", "--pod-cpu", "0"), _cli("local-up", "--pod-cpu", "lots"),
        _cli("local-up", "--cpu-ms", "-1"), _cli("local-up", "--rtt", "node-2=fast", names="--rtt"),
        _cli("local-up", "--rtt", "node-1:node-1=5ms", names="node-1"),
        _cli("local-up", "--nodes", "2", "--rtt", "node-3=5ms", names="node-3"),
        _cli("local-up", "--period", "0"), _cli("local-up", "--monitor", "central"),
        _cli("up", "--project", "X", names="--project"), _cli("up", "--operator-cidr", "0.0.0.0/0", base=_UP_PROJECT),
        _cli("up", "--operator-cidr", "10.0.0.300/8", base=_UP_PROJECT),
        _cli("up", "--workers", "1", base=_UP_OK), _cli("up", "--workers", "two", base=_UP_OK),
        _cli("up", "--zones", "europe", names="europe", base=_UP_OK),
        _cli("up", "--control-plane-zone", "mars-1", names="mars-1", base=_UP_OK),
        _cli("up", "--machine-type", " ", base=_UP_OK), _cli("up", "--name", "Bad_Name", base=_UP_OK),
        _cli("up", "--ssh-user", "Root!", base=_UP_OK),
        _cli("up", "--ssh-public-key", "/nonexistent/id_ed25519", base=_UP_OK),
        _cli("up", "--ssh-public-key", "/nonexistent/id_ed25519.pub", names="/nonexistent/id_ed25519.pub",
             base=_UP_OK),
        _cli("down", "--name", "Bad_Name"),
        _cli("bench", "--scenarios", "moon"), _cli("bench", "--scenarios", "geo,geo"),
        _cli("bench", "--policies", "random"), _cli("bench", "--reps", "0"), _cli("bench", "--reps", "1.5"),
        _cli("bench", "--duration", "0"), _cli("bench", "--duration", "1e9"),
        _cli("bench", "--target", "cloud"), _cli("bench", "--target", "kubeconfig=", names="--target"),
        _cli("bench", "--out", "/", names="--out"),
        _cli("bench", "--image", "python:3.11", names="--image"),
        _cli("bench", "--rap-image", "kube-proxy:rap", names="--rap-image"),
        _cli("scale", "--part", "all"), _cli("scale", "--nodes", "300,100"), _cli("scale", "--nodes", "0"),
        _cli("scale", "--monitor", "central"), _cli("scale", "--sim-nodes", "1"),
        _cli("scale", "--sim-nodes", "20", "--overloaded", "20", names="--overloaded"),
        _cli("scale", "--seed", "-1"), _cli("scale", "--out", "/", names="--out"),
        _cli("bench-crosscheck", "--scenario", "moon"), _cli("bench-crosscheck", "--policy", "random"),
        _cli("bench-crosscheck", "--rate", "0"), _cli("bench-crosscheck", "--duration", "-1"),
        _cli("bench-crosscheck", "--rounds", "0"), _cli("bench-crosscheck", "--warmup", "-1"),
        _cli("bench-crosscheck", "--timeout", "0"), _cli("bench-crosscheck", "--out", "/", names="--out"),
        _cli("deploy", "--image", "kube-proxy"), _cli("deploy", "--image", "a:b", "--timeout", "0",
                                                       names="--timeout"),
        _cli("deploy", "--image", "a:b", "--mode", "greedy", names="--mode"),
        _cli("deploy", "--image", "a:b", "--cpu-threshold", "1.5", names="--cpu-threshold"),
        _cli("deploy", "--image", "a:b", "--period", "none", names="--period"),
        _cli("deploy", "--image", "a:b", "--stale-after", "0", names="--stale-after"),
        _cli("deploy", "--image", "a:b", "--mem-threshold", "0", names="--mem-threshold"),
        _cli("deploy", "--image", "a:b", "--hysteresis", "-0.1", names="--hysteresis"),
        _cli("deploy", "--image", "a:b", "--rtt-per-conn", "-1", names="--rtt-per-conn"),
        _cli("deploy", "--image", "a:b", "--eject", "forever", names="--eject"),
        _cli("deploy", "--image", "a:b", "--rtt-port", "70000", names="--rtt-port"),
        _cli("deploy", "--image", "a:b", "--monitor", "central", names="--monitor"),
        _cli("deploy", "--image", "a:b", "--rtt-probes", "0", names="--rtt-probes"),
        _cli("deploy", "--image", "a:b", "--view-nodes", "-1", names="--view-nodes"),
        _cli("deploy", "--image", "a:b", "--monitor", "aggregator", names="--aggregator-image"),
        _cli("deploy", "--image", "a:b", "--aggregator-image", "rap/aggregator:v1", names="--aggregator-image"),
        _cli("deploy", "--image", "a:b", "--monitor", "aggregator", "--aggregator-image", "aggregator",
             names="--aggregator-image"),
        _cli("deploy", "--image", "a:b", "--w-cpu", "0", "--w-mem", "0", "--w-net", "0", names="--w-cpu"),
        _cli("deploy", "--image", "a:b", "--kubeconfig", "/nonexistent", names="/nonexistent"),
        _cli("rollback", "--timeout", "-5"), _cli("rollback", "--kubeconfig", "/nonexistent", names="/nonexistent"),
        _cli("build-proxy", "--image", "kube-proxy"), _cli("build-proxy", "--push", names="--push"),
        _cli("build-proxy", "--stock-image", "127.0.0.1:5000/Rap/kube-proxy:v1", names="--stock-image"),
        _cli("build-proxy", "--k8s-src", "/nonexistent", names="/nonexistent"),
        _cli("test-proxy", "--k8s-src", "/nonexistent", names="/nonexistent"),
        _cli("fuzz-proxy", "--target", "FuzzAll", names="FuzzAll"), _cli("fuzz-proxy", "--fuzztime", "soon"),
        _cli("test-differential", "--decisions", "0"), _cli("test-differential", "--seed", "-1"),
        _cli("test-differential", "--out", "/", names="--out"),
        _cli("vectors", "--directory", "/nonexistent", names="/nonexistent"),
        _cli("bench-policies", "--rounds", "x"), _cli("bench-proxy", "--rounds", "0"),
    ]


def _setting_cases() -> list[Case]:
    return [
        _setting("mode", "greedy"), _setting("period_s", 0), _setting("stale_after_s", -1),
        _setting("cpu_threshold", 1.5), _setting("mem_threshold", "high"), _setting("w_cpu", -1),
        _setting("w_mem", -0.5), _setting("w_net", True), _setting("hysteresis", 1),
        _setting("rtt_per_conn_ms", -3), _setting("eject_s", -1),
        Case("RAP setting", "w_cpu = w_mem = w_net = 0", "w_cpu + w_mem + w_net",
             config=(("w_cpu", 0), ("w_mem", 0), ("w_net", 0))),
        _setting("min_share", 0.5),
    ]


def _vector_cases() -> list[Case]:
    return [
        _field(("name",), "Other", "$.name"), _field(("name",), DELETE, "name"),
        _field(("description",), 7, "$.description"), _field(("rules",), "local", "$.rules"),
        _field(("local_node",), 1, "$.local_node"), _field(("config",), [], "$.config"),
        _field(("service",), "ClientIP", "$.service"), _field(("metrics",), 5, "$.metrics"),
        _field(("metrics", "pods"), [], "$.metrics.pods"),
        _field(("service", "affinity"), "Sticky", "$.service.affinity"),
        _field(("service", "affinity_timeout_s"), -1, "$.service.affinity_timeout_s"),
        _field(("endpoints", 0, "ip"), "10.0.1.300", "$.endpoints[0].ip"),
        _field(("endpoints", 0, "port"), 0, "$.endpoints[0].port"),
        _field(("endpoints", 0, "node"), None, "$.endpoints[0].node"),
        _field(("endpoints", 0, "port_name"), 80, "$.endpoints[0].port_name"),
        _field(("metrics", "pods", "10.0.1.1", "cpu"), -0.1, '$.metrics.pods["10.0.1.1"].cpu'),
        _field(("metrics", "pods", "10.0.1.1", "mem"), float("nan"), '$.metrics.pods["10.0.1.1"].mem'),
        _field(("metrics", "nodes", "node-a", "at"), -1, '$.metrics.nodes["node-a"].at'),
        _field(("metrics", "rtt_ms", "node-b"), {"ms": -1, "at": 0}, '$.metrics.rtt_ms["node-b"].ms'),
        _field(("metrics", "watched"), ["node-b", "node-b"], "$.metrics.watched"),
        _field(("steps", 0, "request"), "now", "$.steps[0].request"),
        _field(("steps", 0, "request", "client"), "somewhere", "$.steps[0].request.client"),
        _field(("steps", 0, "request", "at"), -1, "$.steps[0].request.at"),
        _field(("steps", 0, "request", "affinity_reset"), "yes", "$.steps[0].request.affinity_reset"),
        _field(("steps", 0, "request", "src_port"), 65536, "$.steps[0].request.src_port"),
        _field(("steps", 0, "request", "port_name"), 80, "$.steps[0].request.port_name"),
        _field(("steps", 0, "expect"), "10.0.1.1", "$.steps[0].expect"),
        _field(("steps", 0, "expect"), "10.0.1.1:99999", "$.steps[0].expect"),
        _field(("steps", 0, "expect_error"), "no-endpoints", "$.steps[0]"),
        _field(("steps", 0), {"request": {"client": "192.0.2.10", "at": 1}, "expect_error": "timeout"},
               "$.steps[0].expect_error"),
        _field(("steps", 0), {"set_endpoints": "none"}, "$.steps[0].set_endpoints"),
        _field(("steps", 0), {"add_endpoints": [{}]}, "$.steps[0].add_endpoints[0]"),
        _field(("steps", 0), {"set_metrics": []}, "$.steps[0].set_metrics"),
        _field(("steps", 0), {"done": {"endpoint": "10.0.1.1"}}, "$.steps[0].done.endpoint"),
        _field(("steps", 0), {"done": {"endpoint": "10.0.1.1:8080", "port_name": 80}}, "$.steps[0].done.port_name"),
        _field(("steps",), [], "$.steps"),
        _field(("published",), {"configmaps": {}, "lease": None}, "published"),
        _field(("wall_clock_at_0",), "2027-01-15T08:00:00Z", "$.wall_clock_at_0"),
        _published(("wall_clock_at_0",), DELETE, "wall_clock_at_0"),
        _published(("wall_clock_at_0",), "2027-02-30T08:00:00Z", "$.wall_clock_at_0"),
        _published(("wall_clock_at_0",), "2027-01-15 08:00:00Z", "$.wall_clock_at_0"),
        _published(("published", "configmaps"), {"load-node-a": {}}, "$.published.configmaps"),
        _published(("published", "configmaps", "rap-load-node-a", "pods"), {"10.0.1.1": {}},
                   '$.published.configmaps["rap-load-node-a"].pods'),
        _published(("published", "lease"), DELETE, "lease"),
        _published(("published", "lease", "metrics_timestamp"), 1800000000, "$.published.lease.metrics_timestamp"),
        _published(("published", "rtt_ms"), {"node-b": {"ms": -1, "at": 0}}, '$.published.rtt_ms["node-b"].ms'),
        _published(("published", "view_nodes"), -1, "$.published.view_nodes"),
        _published(("steps", 0), {"set_published": {"configmaps": {}}}, "$.steps[0].set_published"),
    ]


def run(selected: list[Case] | None = None, workers: int = 4) -> list[Outcome]:
    """Run every case (commands in parallel subprocesses); outcomes in the cases' order."""
    selected = cases() if selected is None else selected
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c: _outcome(c, Path(tmp)), selected))


def _outcome(case: Case, tmp: Path) -> Outcome:
    if case.argv:
        return _run_command(case)
    return _run_vector(case, tmp)


def _run_command(case: Case) -> Outcome:
    # PYTHONPATH: the rap package of this checkout, whichever one pip installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           **(_CLOUD_ENV if case.cloud else {})}
    try:
        done = subprocess.run([sys.executable, "-m", "invoke", *case.argv], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Outcome(case, None, "", f"no answer within {CLI_TIMEOUT_S:g} s: it did not fail in option parsing")
    message = done.stderr.strip()
    return Outcome(case, done.returncode, message, _judge(case, done.returncode, message, done.stdout))


def _judge(case: Case, code: int | None, message: str, stdout: str = "") -> str:
    if code == 0:
        return "exit 0: the bad input was accepted"
    if "Traceback" in message or "\n" in message:
        return "not one line (a traceback or several lines)"
    if case.argv and not message.startswith("error: "):
        return "not the tasks' 'error: ...' line"
    if case.names not in message:
        return f"does not name {case.names!r}"
    return ""


def _run_vector(case: Case, tmp: Path) -> Outcome:
    from rap.vectors import VectorError, load_vector

    doc = copy.deepcopy(json.loads((VECTORS_DIR / f"{_BASE_VECTOR}.json").read_text()))
    for key, value in case.config:
        doc.setdefault("config", {})[key] = value
    for path, value in case.vector:
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(value)  # a case may be run again; its value stays as given
    folder = tmp / f"case-{id(case)}"
    folder.mkdir()
    file = folder / f"{_BASE_VECTOR}.json"
    file.write_text(json.dumps(doc))
    try:
        load_vector(file)
    except VectorError as exc:
        message = str(exc).replace(str(file), "<file>")
        return Outcome(case, None, message, _judge(case, 1, message))
    except Exception as exc:  # a bug: the test shows it
        return Outcome(case, None, f"{type(exc).__name__}: {exc}", "not a VectorError")
    return Outcome(case, 0, "", _judge(case, 0, ""))


def table(outcomes: list[Outcome]) -> str:
    """The docs' table: where, the input, the exit code, the message."""
    rows = ["| where | bad input | exit | message |", "|---|---|---|---|"]
    for o in outcomes:
        code = "–" if o.code is None else str(o.code)
        message = o.message.removeprefix("error: ") if not o.error else f"**DEFECT: {o.error}** {o.message}"
        rows.append(f"| {o.case.where} | `{_cell(o.case.given)}` | {code} | {_cell(message)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def replace_block(doc: str, block: str) -> str:
    """``doc`` with the text between BEGIN and END replaced by ``block``."""
    head, found, rest = doc.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are not both in the document")
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def block_of(doc: str) -> str:
    return doc.partition(BEGIN)[2].partition(END)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m rap.badinputs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="DOC",
                        help="replace the table between the bad-inputs markers of DOC (e.g. docs/reliability.md)")
    args = parser.parse_args(argv)
    outcomes = run()
    text = table(outcomes)
    if args.write:
        args.write.write_text(replace_block(args.write.read_text(), text))
        print(f"wrote {len(outcomes)} cases to {args.write}")
    else:
        print(text)
    defects = [o for o in outcomes if o.error]
    for o in defects:
        print(f"DEFECT {o.case.where} {o.case.given}: {o.error}", file=sys.stderr)
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
