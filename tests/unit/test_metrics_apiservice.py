"""rap.localcluster.metrics.apiservice: the objects that register the server with kube-apiserver."""

from __future__ import annotations

import json

from rap.localcluster import metrics as m


def test_apiservice_object():
    obj = m.apiservice()
    assert obj["apiVersion"] == "apiregistration.k8s.io/v1" and obj["kind"] == "APIService"
    assert obj["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    assert obj["spec"] == {"group": "metrics.k8s.io", "version": "v1beta1",
                           "service": {"namespace": "kube-system", "name": "rap-metrics", "port": 443},
                           "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100, "versionPriority": 100}
    assert json.loads(m.apiservice_yaml()) == obj
    svc, eps = m.service_objects("10.213.0.1", 4443)
    assert svc["spec"]["ports"][0]["name"] == eps["subsets"][0]["ports"][0]["name"]
    assert eps["subsets"][0] == {"addresses": [{"ip": "10.213.0.1"}],
                                 "ports": [{"name": "https", "port": 4443, "protocol": "TCP"}]}
