"""The simulator against the local cluster: the same 3-node shape and load, p50 against p50.

``scenario_of`` rebuilds the measured run's scenario (rap/bench/scenarios.toml's
``rates``) with the rates, step length and warm-up its summary.json says it
ran; ``compare`` sets each simulated p50 beside the measured median p50 of
the same policy and step: within ``TOLERANCE`` is MET, else MISSED. Nothing
here is fitted to the measured figures; the model's two measured parameters
come from rap.sim.calibrate, on another scenario.
"""

from __future__ import annotations

import json
from pathlib import Path

from rap.errors import OptionError
from rap.sim.model import Workload
from rap.sim.scenarios import BENCH_SCENARIO, POLICIES, SimScenario, from_bench

TOLERANCE = 0.25


class ValidationError(OptionError):
    pass


def read_summary(results: Path, option: str) -> dict:
    path = Path(results) / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{option}: cannot read {path}: {exc}; give a folder an `invoke bench` run "
                              "wrote") from None


def scenario_of(measured: dict, workload: Workload, name: str = BENCH_SCENARIO) -> SimScenario:
    sc = measured.get("scenarios", {}).get(name)
    if sc is None:
        raise ValidationError(f"--validate: the run has no {name!r} scenario; make one with "
                              f"`flock /tmp/rap-cluster.lock python3 -m invoke bench --scenarios {name} "
                              f"--policies {','.join(POLICIES)}`")
    load = sc["load"]
    return from_bench(name, workload, rates=tuple(load["rates_rps_per_client"]), duration_s=load["duration_s"],
                      warmup_s=load["warmup_s"])


def compare(doc: dict, measured: dict, results: Path, name: str = BENCH_SCENARIO) -> dict:
    sim = next(sc for sc in doc["scenarios"].values() if sc.get("bench") == name)
    steps = measured["scenarios"][name]["steps"]
    rows = []
    for label, p in sim["policies"].items():
        for key, w in p["windows"].items():
            m = steps.get(key, {}).get("policies", {}).get(label)
            if m is None or m["p50_ms"]["median"] is None:
                continue
            meas, simulated = m["p50_ms"]["median"], w["p50_ms"]
            ratio = simulated / meas if simulated is not None and meas else None
            rows.append({"policy": label, "step": key, "measured_p50_ms": meas, "simulated_p50_ms": simulated,
                         "ratio": ratio, "within": ratio is not None and abs(ratio - 1) <= TOLERANCE,
                         "measured_p95_ms": m["p95_ms"]["median"], "simulated_p95_ms": w["p95_ms"],
                         "measured_local_share": m["local_share"]["median"],
                         "simulated_local_share": w["local_share"]})
    met = sum(r["within"] for r in rows)
    if not rows:
        raise ValidationError(f"--validate: {results} has no {name} step of {', '.join(sim['policies'])}")
    return {"results": str(results), "scenario": name, "tolerance": TOLERANCE, "rows": rows, "met": met,
            "missed": len(rows) - met, "within": met == len(rows)}
