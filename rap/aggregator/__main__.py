"""``python3 -m rap.aggregator``: the options, the API client, and the loop until SIGTERM (``--once``: one round).

A bad option or kubeconfig is one line on stderr and exit 2 (rap.errors);
``--once`` exits 0 after a good round and 1 after a failed one.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from rap.aggregator import options as opts
from rap.aggregator.kube import Kube, describe, wait_synced
from rap.aggregator.loop import Aggregator, Settings
from rap.errors import UserError


def api_client(kubeconfig: str | None):
    """The API client of ``kubeconfig``, or of the pod's service account when None."""
    from kubernetes import client, config

    try:
        if kubeconfig is None:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        return config.new_client_from_config(config_file=kubeconfig)
    except Exception as exc:  # noqa: BLE001 - the loaders raise several kinds; all mean an unusable config
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "the pod's service account"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise opts.AggregatorOptionError(f"{where}: not a usable kubeconfig ({first})") from None


def main(argv: list[str] | None = None) -> int:
    try:
        o = opts.parse(argv)
        api = api_client(o.kubeconfig)
    except UserError as exc:
        print(f"{opts.PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    logging.basicConfig(level=o.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # urllib3 warns at every retried request: an API server that is down would be logged every period.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    kube = Kube(api, o.namespace)
    aggregator = Aggregator(kube, Settings.of(o.config, o.publish_step))
    if o.once:
        try:
            kube.sync()
        except Exception as exc:  # noqa: BLE001 - reported as the round's failure
            logging.getLogger("rap.aggregator").error("cannot list nodes and pods (%s); nothing published", describe(exc))
            return 1
        return 0 if aggregator.step() is not None else 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("rap.aggregator").info(
        "rap.aggregator starting: namespace %s, period %gs, publish step %g, thresholds cpu %g mem %g, hysteresis %g",
        o.namespace, o.config.period_s, o.publish_step, o.config.cpu_threshold, o.config.mem_threshold,
        o.config.hysteresis)
    kube.start(stop)
    wait_synced(kube, min(10.0, 2 * o.config.period_s), stop)
    aggregator.run(stop)
    logging.getLogger("rap.aggregator").info("rap.aggregator stopped (signal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
