"""Real clusters on GCP: Terraform makes the VMs, Ansible makes them a kubeadm
1.21 cluster with kube-proxy in userspace mode.

``cluster.up`` and ``cluster.down`` are what ``invoke up`` and ``invoke down``
call; the other modules each own one step.
"""

from rap.errors import UserError


class CloudError(UserError, RuntimeError):
    """A failure the user can fix; its message names the thing and the fix."""
