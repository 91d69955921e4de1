"""The model's two measured parameters, each measured apart from the figures the simulator is checked on.

- ``http_cpu_ms``: the backend's CPU per request beyond the workload's own
  ``cpu_ms`` (its HTTP parsing and answering: rap.localcluster.backend). Measured
  by running the real backend on the loopback interface, sending it requests
  one at a time on new connections and reading its process CPU time
  (/proc/PID/stat, dead threads included) before and after.
- ``overhead_ms``: what a request's local path costs outside the pod's CPU
  (client, kube-proxy's hop, connection set-up), for an open-loop client. Two
  parts. The closed-loop path is read from an `invoke bench` run of the
  ``balanced`` scenario (another scenario than the one validated): there
  classic RAP serves every request on its own node, one at a time per node,
  with no queue and no throttling (a third of the pods' limit), so its p50 is
  ``path + cpu_ms + http_cpu_ms``. The open loop (the simulator's clients, and
  the validated ``rates`` scenario) times each request from its *scheduled*
  start, and rap.loadgen starts it a little late (docs/bench.md: about 0.9 ms);
  that lateness is the p50 of rap.loadgen's open loop against the same backend
  on the loopback minus the p50 of its closed loop there.

    python3 -m rap.sim --calibrate results/BALANCED_RUN
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rap.errors import UserError


class CalibrationError(UserError):
    pass


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def _backend(cpu_ms: float):
    """The real backend on the loopback: (pid, port)."""
    proc = subprocess.Popen([sys.executable, "-m", "rap.localcluster.backend", "--host", "127.0.0.1", "--port",
                             "0", "--name", "calibration", "--node", "local", "--cpu-ms", f"{cpu_ms:g}"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise CalibrationError(f"the backend did not start: {line.strip() or 'no output'}")
        port = int(line.rsplit(":", 1)[1])
        for _ in range(20):  # warm up: imports, first thread
            _get(port)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(10)


def backend_cpu_ms(cpu_ms: float = 2.0, requests: int = 1000) -> dict:
    """The real backend's CPU and wall time per request at ``cpu_ms``, on the loopback, one request at a time."""
    with _backend(cpu_ms) as (pid, port):
        before, t0 = _cpu_s(pid), time.monotonic()
        walls = sorted(_get(port) for _ in range(requests))
        cpu = (_cpu_s(pid) - before) / requests * 1000
    return {"cpu_ms": cpu_ms, "requests": requests, "cpu_per_request_ms": cpu,
            "http_cpu_ms": max(cpu - cpu_ms, 0.0), "wall_p50_ms": walls[len(walls) // 2],
            "seconds": time.monotonic() - t0}


def open_loop_lateness_ms(cpu_ms: float = 2.0, rate: float = 20.0, duration_s: float = 10.0) -> dict:
    """rap.loadgen's open-loop p50 minus its closed-loop p50, against the same backend on the loopback."""
    from rap import loadgen

    with _backend(cpu_ms) as (_, port):
        url = f"http://127.0.0.1:{port}/"
        opened = loadgen.run(url, "open", rate=rate, duration=duration_s)
        closed = loadgen.run(url, "closed", concurrency=1, think_ms=1000 / rate, duration=duration_s)
    p50 = {name: sorted(s.latency_ms for s in samples)[len(samples) // 2]
           for name, samples in (("open", opened), ("closed", closed))}
    return {"rate_rps": rate, "open_p50_ms": p50["open"], "closed_p50_ms": p50["closed"],
            "lateness_ms": max(p50["open"] - p50["closed"], 0.0)}


def _get(port: int) -> float:
    t = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/", headers={"Connection": "close"})
    conn.getresponse().read()
    conn.close()
    return (time.monotonic() - t) * 1000


def overhead_ms(results: Path, http_cpu_ms: float, scenario: str = "balanced", policy: str = "rap") -> dict:
    """``overhead_ms`` from a bench run's ``scenario`` (see the module's docstring)."""
    from rap.sim.validate import read_summary

    doc = read_summary(results, "--calibrate")
    sc = doc["scenarios"].get(scenario)
    if sc is None or "closed" not in sc["steps"] or policy not in sc["steps"]["closed"]["policies"]:
        raise CalibrationError(f"--calibrate: {results} has no {scenario} run of {policy}; make one with "
                               f"`python3 -m invoke bench --scenarios {scenario} --policies round-robin,{policy}`")
    m = sc["steps"]["closed"]["policies"][policy]
    p50, local = m["p50_ms"]["median"], m["local_share"]["median"]
    cpu_ms = sc["shape"]["cpu_ms"]
    return {"scenario": scenario, "policy": policy, "p50_ms": p50, "local_share": local, "cpu_ms": cpu_ms,
            "http_cpu_ms": http_cpu_ms, "overhead_ms": p50 - cpu_ms - http_cpu_ms}


def calibrate(results: Path, out: Path | None, say=print) -> dict:
    say("measuring the backend's own CPU per request on the loopback (rap.localcluster.backend) ...")
    backend = backend_cpu_ms()
    say(f"backend: {backend['cpu_per_request_ms']:.2f} ms of CPU per request at cpu_ms {backend['cpu_ms']:g}: "
        f"http_cpu_ms {backend['http_cpu_ms']:.2f}")
    path = overhead_ms(results, backend["http_cpu_ms"])
    say(f"closed-loop local path from {results} ({path['scenario']}, {path['policy']}, local share "
        f"{path['local_share']:.0%}): p50 {path['p50_ms']:.2f} ms - {path['cpu_ms']:g} - {path['http_cpu_ms']:.2f} "
        f"= {path['overhead_ms']:.2f} ms")
    say("measuring rap.loadgen's open-loop lateness on the loopback (open against closed loop, 2 x 10 s) ...")
    late = open_loop_lateness_ms()
    say(f"open-loop lateness: p50 {late['open_p50_ms']:.2f} - {late['closed_p50_ms']:.2f} = "
        f"{late['lateness_ms']:.2f} ms")
    total = path["overhead_ms"] + late["lateness_ms"]
    say(f"overhead_ms = {path['overhead_ms']:.2f} + {late['lateness_ms']:.2f} = {total:.2f}; "
        f"http_cpu_ms = {backend['http_cpu_ms']:.2f}")
    doc = {"backend": backend, "local_path": path, "open_loop": late,
           "http_cpu_ms": round(backend["http_cpu_ms"], 2), "overhead_ms": round(total, 2)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc
