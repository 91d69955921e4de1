"""`invoke deploy` / `invoke rollback`: the RAP kube-proxy into a kubeadm cluster's kube-system, and back.

options.py checks the options (RAP's from rap/schemas/rap-config.json);
spec.py holds the pure edits (env, KubeProxyConfiguration, record, each
monitor's RBAC and, for the aggregated one, the aggregator's objects, rollout
progress); kube.py talks to the API server; rollout.py is the two commands.
See docs/deploy.md.

``deploy`` and ``rollback`` load the Kubernetes client, so they are imported
on first use: importing this package (or rap.deploy.options, for the task
help) stays cheap.
"""

from rap.deploy.options import DeployError, DeployOptions, option_help, parse_options, parse_timeout

__all__ = ["DeployError", "DeployOptions", "deploy", "option_help", "parse_options", "parse_timeout", "rollback"]


def __getattr__(name: str):
    if name in ("deploy", "rollback"):
        from rap.deploy import rollout

        return getattr(rollout, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
