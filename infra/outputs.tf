# rap.cloud.inventory reads these to write the Ansible inventory.
output "nodes" {
  description = "Every VM: name, role (control-plane or worker), zone, public and private IP."
  value = concat(
    [{
      name       = google_compute_instance.control_plane.name
      role       = "control-plane"
      zone       = google_compute_instance.control_plane.zone
      public_ip  = google_compute_instance.control_plane.network_interface[0].access_config[0].nat_ip
      private_ip = google_compute_instance.control_plane.network_interface[0].network_ip
    }],
    [for w in google_compute_instance.worker : {
      name       = w.name
      role       = "worker"
      zone       = w.zone
      public_ip  = w.network_interface[0].access_config[0].nat_ip
      private_ip = w.network_interface[0].network_ip
    }]
  )
}

output "ssh_user" {
  description = "User that Ansible logs in as."
  value       = var.ssh_user
}

output "pod_cidr" {
  description = "Pod network, passed to kubeadm and flannel."
  value       = var.pod_cidr
}

output "subnets" {
  description = "Node subnet of each region used."
  value       = local.subnet_cidrs
}
