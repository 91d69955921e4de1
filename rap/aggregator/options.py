"""``python3 -m rap.aggregator``'s options: their help, and each bad value as one line naming the option.

RAP's own settings (``--period``, the thresholds and the hysteresis the
changes-only rule reads) take their name, range, default and help from
rap/schemas/rap-config.json, so they mean what the same settings of the
kube-proxies mean; give the aggregator the values the kube-proxies run with.
``--publish-step`` is the aggregator's alone (docs/scale.md). Not here: what
the options do (``loop``, ``kube``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from rap.aggregator.publish import DEFAULT_NAMESPACE, DEFAULT_STEP
from rap.config import FIELDS, ConfigError, RapConfig
from rap.errors import OptionError
from rap.options import number

PROG = "python3 -m rap.aggregator"
# The RAP settings the aggregator reads, each under its option of the table (--period, --cpu-threshold, ...).
SETTINGS = ("period_s", "cpu_threshold", "mem_threshold", "hysteresis")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class AggregatorOptionError(OptionError):
    """A bad option of the aggregator; the message names it and the fix."""


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None  # None: the pod's service account (in-cluster)
    namespace: str
    config: RapConfig
    publish_step: float
    once: bool
    log_level: str


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one AggregatorOptionError line, not a usage block and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise AggregatorOptionError(f"{message} (see `{PROG} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=(
        "RAP's central aggregator (docs/scale.md): keeps Nodes and running Pods by list+watch, reads "
        "metrics.k8s.io once per period, and publishes one ConfigMap rap-load-<node> per node (rewritten only "
        "when it changed past --publish-step or across a threshold) and the heartbeat Lease rap-aggregator, "
        "which the kube-proxies of RAP's aggregated monitor watch. Runs until SIGTERM."))
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="kubeconfig of the cluster (default: the pod's service account, when run in a pod)")
    p.add_argument("--namespace", metavar="NS", default=DEFAULT_NAMESPACE,
                   help=f"where the ConfigMaps and the Lease live; the kube-proxies' aggregator_namespace "
                        f"(default {DEFAULT_NAMESPACE})")
    for name in SETTINGS:
        f = FIELDS[name]
        p.add_argument(f"--{f.option}", dest=name, metavar="X", help=f.describe())
    p.add_argument("--publish-step", metavar="X", help=(
        "how far a published fraction must move before its node's ConfigMap is rewritten (a threshold "
        f"crossing rewrites it at once); in [0, 1], 0 = every change of 0.01 (default {DEFAULT_STEP:g})"))
    p.add_argument("--once", action="store_true",
                   help="one round (list, read metrics, publish, renew the Lease), then exit: 0 if it succeeded")
    p.add_argument("--log-level", default="INFO", metavar="LEVEL",
                   help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return p


def _kubeconfig(path: Any) -> str | None:
    if path is None:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise AggregatorOptionError("--kubeconfig: not given, and this is not a pod (no KUBERNETES_SERVICE_HOST); "
                                        "give --kubeconfig PATH")
        return None
    if not os.path.isfile(path):
        raise AggregatorOptionError(f"--kubeconfig: {path} is not a file; give the kubeconfig of the cluster "
                                    "(the local cluster's is in its pki folder)")
    return path


def _step(text: Any) -> float:
    value = number("--publish-step", text, float, AggregatorOptionError, DEFAULT_STEP)
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise AggregatorOptionError(f"--publish-step: must be in [0, 1] (a fraction), got {text}")
    return value


def parse(argv: list[str] | None = None) -> Options:
    """The options of ``argv``, every value checked; AggregatorOptionError on the first bad one."""
    args = build_parser().parse_args(argv)
    namespace = args.namespace
    if not _DNS_LABEL.fullmatch(namespace or ""):
        raise AggregatorOptionError(f"--namespace: {namespace!r} is not a namespace name "
                                    "(lower-case letters, digits and '-', at most 63)")
    level = str(args.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise AggregatorOptionError(f"--log-level: {args.log_level!r}: want DEBUG, INFO, WARNING or ERROR")
    values = {}
    for name in SETTINGS:
        text = getattr(args, name)
        if text is not None:
            values[name] = number(f"--{FIELDS[name].option}", text, float, AggregatorOptionError)
    try:
        config = RapConfig.from_mapping(values)
    except ConfigError as exc:
        raise AggregatorOptionError(f"{' + '.join('--' + FIELDS[n].option for n in exc.fields)}: {exc.reason}") from None
    return Options(_kubeconfig(args.kubeconfig), namespace, config, _step(args.publish_step), args.once, level)
