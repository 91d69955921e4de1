"""The kubelet port stand-in that each node namespace answers on.

RAP measures the round-trip time between nodes as the TCP connect time to a
port every node answers on (the kubelet's 10250 on a real cluster). There is
no kubelet here, so each node namespace runs this listener instead; it accepts
and closes, nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def _serve(host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Accept-and-close TCP listener for RTT probes.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--port", type=int, default=10250, help="port to listen on (default 10250)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
