"""The local cluster's metrics server: metrics.k8s.io/v1beta1 measured from its cgroups.

Stands in for metrics-server: kube-apiserver's aggregation layer proxies
/apis/metrics.k8s.io/v1beta1 here, so RAP reads the same API as on a real
cluster. Run as ``python3 -m rap.localcluster.metrics`` (``cli``), or in-process
with ``start`` (tests). Modules, one concern each:

- ``registry``: which cgroups stand for which nodes and pods (the file the cluster code writes)
- ``sampler``: CPU rates and memory from those cgroups, as metrics-server measures them
- ``wire``: NodeMetrics, PodMetrics, discovery and Status objects, as metrics-server prints them
- ``api``: paths and label selectors -> (code, object), independent of HTTP
- ``server``: HTTPS keep-alive serving, health checks, the fault switch, ``start``
- ``apiservice``: the APIService, Service and Endpoints that register the server
- ``cli``: the command line

Fault injection: ``--fail``, SIGUSR1 (toggle) or ``POST /control/fail?on=1|0``
make the metric endpoints answer 503, as an unavailable metrics-server would;
``--slow S`` or ``POST /control/slow?seconds=S`` (0 = off) make them answer S
seconds late, as an overloaded one would. ``control`` sets both from the root
namespace of a running local cluster (``set_failing``, ``set_slow``).
This package is not a metrics client: RAP's monitors read it through the API server.
"""

from rap.localcluster.metrics.api import MAX_SLOW_S, MetricsAPI, check_slow, match_labels
from rap.localcluster.metrics.apiservice import MANAGED_BY, apiservice, apiservice_yaml, service_objects
from rap.localcluster.metrics.cli import main
from rap.localcluster.metrics.control import CONTROL_FILE, MetricsControlError, faults, set_failing, set_slow
from rap.localcluster.metrics.registry import (DEFAULT_CONTAINER, PodEntry, Registry, RegistryError, RegistryFile,
                                               parse_registry, write_registry)
from rap.localcluster.metrics.sampler import Reader, Sample, Sampler, Usage, read_cgroup
from rap.localcluster.metrics.server import Handler, MetricsServer, TLSServer, start, tls_context
from rap.localcluster.metrics.wire import (GROUP, GROUP_VERSION, OPENAPI_V2, PREFIX, VERSION, api_group,
                                           api_group_list, api_resource_list, go_duration, metrics_list,
                                           node_metrics, pod_metrics, rfc3339, single, status)
from rap.quantity import cpu_quantity, memory_quantity

__all__ = [
    "CONTROL_FILE", "DEFAULT_CONTAINER", "GROUP", "MAX_SLOW_S", "MetricsControlError", "GROUP_VERSION", "MANAGED_BY", "OPENAPI_V2", "PREFIX", "VERSION",
    "Handler", "MetricsAPI", "MetricsServer", "PodEntry", "Reader", "Registry", "RegistryError", "RegistryFile",
    "Sample", "Sampler", "TLSServer", "Usage",
    "api_group", "api_group_list", "api_resource_list", "apiservice", "apiservice_yaml", "check_slow", "cpu_quantity",
    "faults", "set_failing", "set_slow",
    "go_duration", "main", "match_labels", "memory_quantity", "metrics_list", "node_metrics", "parse_registry",
    "pod_metrics", "read_cgroup", "rfc3339", "service_objects", "single", "start", "status", "tls_context",
    "write_registry",
]
