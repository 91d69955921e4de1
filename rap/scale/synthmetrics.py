"""The local cluster's metrics server with synthetic usage for KWOK's pods and nodes (``python3 -m rap.scale.synthmetrics``).

Exactly ``python3 -m rap.localcluster.metrics`` (same options, same TLS, same
clients, registered by the same APIService), plus ``--seed``: names under
``synthetic/`` in the registry are served from rap.scale.synthetic, every
other one from its cgroup, so the local cluster's real nodes keep their
measured use. The scale harness starts it in place of the cluster's own
metrics server.
"""

from __future__ import annotations

import sys

from rap.localcluster.metrics import cli
from rap.localcluster.metrics.sampler import read_cgroup
from rap.scale.synthetic import SyntheticReader


def split_seed(argv: list[str]) -> tuple[int, list[str]]:
    """``--seed N`` (default 1) out of ``argv``; the rest is the metrics server's own options."""
    rest, seed, i = [], 1, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--seed" or arg.startswith("--seed="):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in arg else 2
            try:
                seed = int(value)
            except ValueError:
                raise SystemExit(f"synthmetrics: --seed {value!r} is not a whole number") from None
            continue
        rest.append(arg)
        i += 1
    return seed, rest


def main(argv: list[str] | None = None) -> int:
    seed, rest = split_seed(list(sys.argv[1:] if argv is None else argv))
    return cli.main(rest, reader=SyntheticReader(seed, fallback=read_cgroup))


if __name__ == "__main__":
    sys.exit(main())
