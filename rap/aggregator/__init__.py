"""rap.aggregator: the central monitor of RAP's aggregated mode (docs/scale.md, issue 15).

One process (a Deployment on a real cluster, a root-namespace process in the
local cluster) keeps the cluster's Nodes and running Pods by list+watch, reads
metrics.k8s.io once per period, and publishes what every kube-proxy needs: one
ConfigMap ``rap-load-<node>`` per node, rewritten only on change (with
hysteresis), and the Lease ``rap-aggregator`` renewed after every good round.
rap.go's aggregated monitor (rap_patch/rap_aggregated.go) watches those.

One module per concern:

- ``usage``: pods + nodes + metrics -> per-node records (pure; rap.go's maths);
- ``publish``: the objects' names and shapes, and the changes-only diff (pure);
- ``kube``: the API (reflectors, metrics, ConfigMaps, the Lease);
- ``loop``: the period loop; ``options`` and ``__main__``: the command line;
- ``rbac``: the aggregator's and the kube-proxy's roles, the Deployment;
- ``local``: running it in the local cluster (rap.localcluster).
"""
