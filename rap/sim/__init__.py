"""A discrete-event simulator (SimPy) of RAP's decisions at hundreds of nodes, with the project's real policies.

Each simulated node runs its own instance of a real policy of rap.policies
(round robin, classic RAP, adaptive RAP, least-request) fed by a simulated
monitor; pods are CPU-limited queues, nodes are joined by an RTT matrix,
clients on many nodes send open-loop load with steps. It reports latency
percentiles, how forwarded traffic spreads over nodes, and how long the
cluster takes to settle after a load step, and is checked against the local
cluster on the 3-node scenario of `invoke bench`.

Modules: model.py (cluster, pods, clients), monitor.py (metrics API and per-node
monitors), scenarios.py, run.py (runs, CLI), report.py, plots.py, validate.py,
calibrate.py, options.py. What the model leaves out: docs/scale.md, "The simulator".
"""
