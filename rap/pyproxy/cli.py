"""``python3 -m rap.pyproxy``: options, logging, and the main loop (watch, monitor, relay)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
import time

from rap.config import DECISION_FIELDS, MONITOR_FIELDS, ConfigError, MonitorConfig, RapConfig
from rap.policies import POLICY_NAMES, make_policy
from rap.pyproxy.iptables import Iptables, IptablesError
from rap.pyproxy.relay import Proxier
from rap.pyproxy.services import port_specs

log = logging.getLogger("rap.pyproxy")

# --rap-<field> for each decision setting of rap/schemas/rap-config.json (--rap-period-s, ...);
# the checks and their messages stay in RapConfig.
RAP_FLAGS = {f.name: f"--rap-{f.name.replace('_', '-')}" for f in DECISION_FIELDS}
MONITOR_FLAGS = {f.name: f"--{f.option}" for f in MONITOR_FIELDS}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m rap.pyproxy",
        description="The RAP toolkit's Python balancer as a userspace Service proxy for one node "
                    "(run inside the node's network namespace, as root).")
    p.add_argument("--kubeconfig", required=True, metavar="PATH", help="kubeconfig of the API server to watch")
    p.add_argument("--node", required=True, metavar="NAME", help="this node's name (RAP's local node)")
    p.add_argument("--bind-address", required=True, metavar="IP",
                   help="this node's IP: proxy listeners bind here and the DNAT rules point here")
    p.add_argument("--policy", default="rap", choices=POLICY_NAMES, help="balancing policy (default rap)")
    for f in DECISION_FIELDS:
        # A choice is left to RapConfig too (not argparse's choices), so its message names the field.
        p.add_argument(RAP_FLAGS[f.name], dest=f.name, type=str if f.choices else float,
                       metavar="{" + ",".join(f.choices) + "}" if f.choices else "X", help=f.describe())
    for f in MONITOR_FIELDS:  # checked by MonitorConfig, like the decision's by RapConfig
        p.add_argument(MONITOR_FLAGS[f.name], dest=f.name, type=str if f.choices else _integer, default=f.default,
                       metavar="{" + ",".join(f.choices) + "}" if f.choices else "N", help=f.describe())
    p.add_argument("--sync-period-s", type=float, default=1.0, metavar="S",
                   help="how often Services and Endpoints are listed (default 1)")
    p.add_argument("--iptables", default="iptables", metavar="BIN",
                   help="iptables binary; BIN-restore must exist too (default iptables)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the endpoint shuffle (default random)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging level (default INFO)")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, RapConfig]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ipaddress.IPv4Address(args.bind_address)
    except ValueError:
        parser.error(f"--bind-address: {args.bind_address!r} is not an IPv4 address")
    try:
        args.monitor_config = MonitorConfig(**{name: getattr(args, name) for name in MONITOR_FLAGS})
    except ConfigError as e:
        parser.error(f"{', '.join(MONITOR_FLAGS[name] for name in e.fields)}: {e.reason}")
    if not args.sync_period_s > 0:
        parser.error(f"--sync-period-s: must be > 0 seconds, got {args.sync_period_s}")
    if not os.path.isfile(args.kubeconfig):
        parser.error(f"--kubeconfig: {args.kubeconfig} does not exist (local-up writes it to the runtime folder)")
    values = {name: getattr(args, name) for name in RAP_FLAGS if getattr(args, name) is not None}
    try:
        config = RapConfig.from_mapping(values)
    except ConfigError as e:
        parser.error(f"{', '.join(RAP_FLAGS[name] for name in e.fields)}: {e}")
    return args, config


def _integer(text: str) -> int | float:
    """An integer option's text as a number for MonitorConfig to check (8080.5 and "x" fail there,
    with the range in the message)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


def check_bind_address(address: str) -> None:
    """Fail at start, not at the first Service, when this namespace has no such address."""
    import socket

    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError as e:
            raise StartupError(f"--bind-address {address}: cannot listen there ({e.strerror}); "
                               "give this node's own IP and run inside its network namespace") from None


class StartupError(RuntimeError):
    pass


async def watch_services(api_client, proxier: Proxier, period_s: float) -> None:
    """List Services and Endpoints every period and hand the whole state to the proxier.

    Listing is simpler than a watch and recovers from any error by itself: the
    next round simply sees the current state. Errors are logged once per change.
    """
    from rap.pyproxy.monitor import core_json

    failing = False
    while True:
        started = time.monotonic()
        try:
            services = await asyncio.to_thread(core_json, api_client, "list_service_for_all_namespaces")
            endpoints = await asyncio.to_thread(core_json, api_client, "list_endpoints_for_all_namespaces")
        except Exception as e:  # noqa: BLE001 - keep serving the last known state
            if not failing:
                log.error("cannot list Services/Endpoints (%s); serving the last known state", _one_line(e))
            failing = True
        else:
            if failing:
                log.info("listing Services/Endpoints works again")
            failing = False
            await proxier.sync(port_specs(services, endpoints))
        await asyncio.sleep(max(0.0, period_s - (time.monotonic() - started)))


async def run_monitor(monitor, period_s: float) -> None:
    while True:
        started = time.monotonic()
        await asyncio.to_thread(monitor.refresh)
        await asyncio.sleep(max(0.0, period_s - (time.monotonic() - started)))


async def serve(args: argparse.Namespace, config: RapConfig) -> None:
    from kubernetes import config as kubeconfig

    from rap.pyproxy.monitor import Monitor

    check_bind_address(args.bind_address)
    try:
        api_client = kubeconfig.new_client_from_config(config_file=args.kubeconfig)
    except Exception as e:  # noqa: BLE001 - the client raises several kinds; all mean a bad file
        raise StartupError(f"--kubeconfig {args.kubeconfig}: not a usable kubeconfig ({_one_line(e)})") from None
    policy = make_policy(args.policy, local_node=args.node, config=config, seed=args.seed)
    rules = Iptables(args.iptables)
    rules.check_tools()
    rules.setup()  # also removes a crashed run's rules
    proxier = Proxier(policy, args.bind_address, rules)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(watch_services(api_client, proxier, args.sync_period_s))]
    if args.policy == "rap" and args.monitor == "aggregator":
        from rap.pyproxy.aggmonitor import AggregatedMonitor

        monitor = AggregatedMonitor(api_client, policy, args.node, config.period_s, args.rtt_port, args.rtt_probes,
                                    view_nodes=args.view_nodes)
        tasks.append(asyncio.create_task(run_monitor(monitor, config.period_s)))
    elif args.policy == "rap":
        monitor = Monitor(api_client, policy, args.node, config.period_s, args.rtt_port)
        tasks.append(asyncio.create_task(run_monitor(monitor, config.period_s)))
    try:
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t in tasks:
                t.result()  # a crashed loop is an error, not a silent stop
    finally:
        for t in tasks:
            t.cancel()
        await proxier.close()  # removes every rule this run made
        log.info("stopped; rules removed")


def main(argv: list[str] | None = None) -> int:
    args, config = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s pyproxy[" + args.node + "] %(levelname)s %(message)s")
    # urllib3 warns on every retry of every request; our own once-per-change errors say it better.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    log.info("starting: policy=%s node=%s bind=%s monitor=%s sync_period_s=%g config=%s",
             args.policy, args.node, args.bind_address, args.monitor_config.as_dict(), args.sync_period_s,
             config.as_dict())
    try:
        asyncio.run(serve(args, config))
    except (IptablesError, StartupError) as e:
        log.error("%s", e)
        return 1
    return 0


def _one_line(err: BaseException) -> str:
    from rap.pyproxy.monitor import _short

    return _short(err)
