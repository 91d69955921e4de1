locals {
  # A subnet is regional, so every region that holds a node needs one; a GCP
  # VPC is global, so nodes in different regions still talk over private IPs.
  control_plane_region = replace(var.control_plane_zone, "/-[a-z]$/", "")
  worker_zone_list     = [for i in range(var.worker_count) : var.worker_zones[i % length(var.worker_zones)]]
  worker_regions       = [for z in local.worker_zone_list : replace(z, "/-[a-z]$/", "")]
  regions              = distinct(concat([local.control_plane_region], local.worker_regions))

  subnet_cidrs = { for i, r in local.regions : r => cidrsubnet(var.node_cidr, 8, i) }

  # Everything the Kubernetes-port rules admit: the node subnets and the pod
  # network. Nothing from outside the cluster is in this list.
  internal_ranges = concat(values(local.subnet_cidrs), [var.pod_cidr])

  node_tag          = "${var.name_prefix}-node"
  control_plane_tag = "${var.name_prefix}-control-plane"
  ssh_keys          = "${var.ssh_user}:${trimspace(file(pathexpand(var.ssh_public_key_path)))}"
}

resource "google_compute_network" "cluster" {
  name                    = "${var.name_prefix}-net"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "nodes" {
  for_each = local.subnet_cidrs

  name          = "${var.name_prefix}-${each.key}"
  region        = each.key
  network       = google_compute_network.cluster.id
  ip_cidr_range = each.value
}

resource "google_compute_firewall" "ssh" {
  name          = "${var.name_prefix}-allow-ssh"
  network       = google_compute_network.cluster.name
  direction     = "INGRESS"
  source_ranges = [var.operator_cidr]
  target_tags   = [local.node_tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# Only the API server is reachable on the control plane, and only from inside
# the cluster. etcd (2379-2380), the controller-manager (10257) and the
# scheduler (10259) get no rule at all: kubeadm's single control plane talks
# to them over its own addresses, which a VPC firewall never filters, so no
# other VM has a reason to reach them.
resource "google_compute_firewall" "kubernetes_api" {
  name          = "${var.name_prefix}-allow-kubernetes-api"
  network       = google_compute_network.cluster.name
  direction     = "INGRESS"
  source_ranges = local.internal_ranges
  target_tags   = [local.control_plane_tag]

  allow {
    protocol = "tcp"
    ports    = ["6443"]
  }
}

resource "google_compute_firewall" "kubernetes_nodes" {
  name          = "${var.name_prefix}-allow-kubernetes-nodes"
  network       = google_compute_network.cluster.name
  direction     = "INGRESS"
  source_ranges = local.internal_ranges
  target_tags   = [local.node_tag]

  # The kubelet (the API server and metrics-server call it) and NodePorts.
  allow {
    protocol = "tcp"
    ports    = ["10250", "30000-32767"]
  }

  # flannel's VXLAN overlay, and UDP NodePorts.
  allow {
    protocol = "udp"
    ports    = ["8472", "30000-32767"]
  }

  # Ping between nodes: RTT probes and path-MTU discovery for the overlay.
  allow {
    protocol = "icmp"
  }
}

resource "google_compute_instance" "control_plane" {
  name         = "${var.name_prefix}-cp"
  zone         = var.control_plane_zone
  machine_type = var.control_plane_machine_type
  tags         = [local.node_tag, local.control_plane_tag]
  labels       = merge(var.labels, { role = "control-plane" })

  # Lets a CNI without encapsulation (flannel host-gw) route pod addresses
  # too; flannel's default VXLAN does not need it.
  can_ip_forward = true

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.disk_size_gb
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.nodes[local.control_plane_region].id
    access_config {}
  }

  metadata = {
    ssh-keys = local.ssh_keys
  }
}

resource "google_compute_instance" "worker" {
  count = var.worker_count

  name         = "${var.name_prefix}-worker-${count.index}"
  zone         = local.worker_zone_list[count.index]
  machine_type = var.worker_machine_type
  tags         = [local.node_tag]
  labels       = merge(var.labels, { role = "worker" })

  can_ip_forward = true

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.disk_size_gb
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.nodes[local.worker_regions[count.index]].id
    access_config {}
  }

  metadata = {
    ssh-keys = local.ssh_keys
  }
}
