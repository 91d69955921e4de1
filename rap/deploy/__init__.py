"""`invoke deploy` / `invoke rollback`: the RAP kube-proxy into a kubeadm cluster's kube-system, and back.

spec.py holds the pure edits (options, env, KubeProxyConfiguration, record,
RBAC, rollout progress); kube.py talks to the API server; rollout.py is the
two commands. See docs/deploy.md.
"""

from rap.deploy.rollout import deploy, rollback
from rap.deploy.spec import DeployError, DeployOptions, parse_options, parse_timeout

__all__ = ["DeployError", "DeployOptions", "deploy", "parse_options", "parse_timeout", "rollback"]
