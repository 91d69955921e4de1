"""The Python reference balancer run as a userspace Service proxy (kube-proxy's userspace mode).

    python3 -m rap.pyproxy --kubeconfig admin.kubeconfig --node node-1 \\
        --bind-address 10.213.0.11 --policy rap

Run inside a node's network namespace. For every TCP Service port it listens
on ``bind-address:<ephemeral port>`` and DNATs ``clusterIP:port`` there (nat
OUTPUT for the node itself, PREROUTING for its pods), then relays each
connection to the endpoint the policy picks. Modules:

- ``services``: Services + Endpoints JSON -> ``PortSpec`` (one per service port)
- ``iptables``: the redirection rules, generated as text, applied atomically
- ``relay``: the asyncio proxier (listeners, connect with retries, byte pipes)
- ``monitor``: metrics.k8s.io + core API + RTT probes -> ``Snapshot`` (quantities: ``rap.quantity``)
- ``cli``: options, logging, the main loop
"""
