"""HAProxy as a Service proxy of the local cluster: the peers ``haproxy`` and ``haproxy-leastconn``.

One agent per node namespace (``python3 -m rap.localcluster.haproxy``, started
by rap/localcluster/cluster.py as ``proxy-i``) runs Debian's haproxy in TCP
mode on 127.0.0.1, keeps its servers equal to the Service's ready endpoints
through the runtime API (no reloads), and DNATs the node namespace's own
connections to ``ClusterIP:port`` to it with one nat OUTPUT rule.

- ``binary``: finding haproxy and its version (``preflight``)
- ``config``: haproxy.cfg
- ``runtime``: the admin socket
- ``sync``: endpoints -> server slots -> runtime commands
- ``endpoints``: the Service's ready endpoints from the API server
- ``redirect``: the nat rule (``cleanup``)
- ``agent`` and ``cli``: the process cluster.py runs

Not here: which proxy kinds exist (rap/localcluster/proxykinds.py) and when
the agent starts and stops (rap/localcluster/cluster.py).
"""

from rap.localcluster.haproxy.binary import preflight
from rap.localcluster.haproxy.errors import HaproxyError
from rap.localcluster.haproxy.redirect import cleanup

__all__ = ["HaproxyError", "cleanup", "preflight"]
