"""`invoke bench`'s options: their help and their parser, defaults from Options.

The task hands the raw option text here; a bad option is a ScenarioError
(exit 2) that names it, raised before any cluster is touched.
"""

from __future__ import annotations

from rap.bench.scenarios import (BARS, EXTRA_PEERS, MAX_DURATION_S, PEERS, POLICIES, SCENARIOS, Options,
                                  ScenarioError, parse_names, parse_policies)
from rap.options import new_or_empty_folder, number

QUICK_REPS = 1
# The backend and load generator's image on a real cluster (rap.bench.kube).
DEFAULT_IMAGE = "python:3.11-slim"


def option_help() -> dict[str, str]:
    d = Options()
    return {
        "quick": f"a short run ({QUICK_REPS} repetition, short steps, two rates, no production-cadence "
                 "scenarios; about a minute per policy), as CI and the README use",
        "scenarios": f"comma-separated subset of {','.join(SCENARIOS)} (default all)",
        "policies": f"comma-separated subset of {','.join(POLICIES)} (default all; RAP is compared with "
                    f"the best of the peers {', '.join(PEERS)} that ran"
                    + "".join(f", {v} also with {', '.join(extra)}" for v, extra in EXTRA_PEERS.items())
                    + "; " + ", ".join(sorted({b.policy for b in BARS.values()})) + " is judged MET/MISSED "
                    "against the bar of scenarios.toml)",
        "reps": f"repetitions of each policy in each scenario, interleaved (default {d.reps}; "
                f"{QUICK_REPS} with --quick)",
        "duration": f"seconds of load per step, overriding each scenario's own (at most {MAX_DURATION_S})",
        "out": "results folder (default results/<timestamp>); must be new or empty",
        "target": f"{d.target} (default: the local cluster, one per scenario shape) or kubeconfig=PATH "
                  "(a real cluster)",
        "image": f"with kubeconfig=PATH: image that runs the backend and load generator (default {DEFAULT_IMAGE})",
        "rap_image": "with kubeconfig=PATH: the RAP kube-proxy image to switch the kube-proxy DaemonSet to",
    }


def parse_options(*, quick=False, scenarios=None, policies=None, reps=None, duration=None, out=None,
                  target=None, image=None, rap_image=None) -> Options:
    """Raw option text -> Options; --quick changes the default repetitions only.

    ``image`` and ``rap_image`` are only checked here (the target takes them): they name images for a
    real cluster, so with the local target they are refused rather than silently ignored.
    """
    default_reps = QUICK_REPS if quick else Options().reps
    target = target or Options().target
    for option, ref in (("--image", image), ("--rap-image", rap_image)):
        if ref is not None:
            _check_image(option, ref, target)
    return Options(scenarios=parse_names(scenarios), policies=parse_policies(policies), quick=bool(quick),
                   out=new_or_empty_folder("--out", out, ScenarioError), target=target,
                   reps=number("--reps", reps, int, ScenarioError, default_reps),
                   duration=number("--duration", duration, float, ScenarioError))


def _check_image(option: str, ref: str, target: str) -> None:
    if not str(target).strip().startswith("kubeconfig="):
        raise ScenarioError(f"{option} names an image for a real cluster: it needs --target kubeconfig=PATH "
                            f"(the local cluster runs the binaries built here)")
    from rap.deploy.options import DeployError, check_image

    try:
        check_image(ref)
    except DeployError as exc:
        raise ScenarioError(str(exc).replace("--image", option, 1)) from None
