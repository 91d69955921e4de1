variable "project_id" {
  description = "GCP project ID that owns every resource made here."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID: 6-30 characters, lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name, so that several clusters can share a project."
  type        = string
  default     = "rap"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "name_prefix must be 1-20 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "control_plane_zone" {
  description = "Zone of the control-plane VM, e.g. europe-west1-b."
  type        = string
  default     = "europe-west1-b"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.control_plane_zone))
    error_message = "control_plane_zone must be a GCP zone such as europe-west1-b."
  }
}

variable "worker_count" {
  description = "Number of worker VMs (at least 2: RAP's choice between local and remote nodes needs two)."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_count >= 2 && var.worker_count <= 50 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 2 to 50."
  }
}

variable "worker_zones" {
  description = "Zones the workers are spread over, in turn (worker i goes to worker_zones[i % length]). Zones in different regions reproduce the paper's geo-distributed setup."
  type        = list(string)
  default     = ["europe-west1-b", "europe-west4-a"]

  validation {
    condition     = length(var.worker_zones) >= 1 && alltrue([for z in var.worker_zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "worker_zones must be a non-empty list of GCP zones such as [\"europe-west1-b\", \"us-central1-a\"]."
  }
}

variable "control_plane_machine_type" {
  description = "Machine type of the control-plane VM (kubeadm needs at least 2 vCPUs and 1.7 GB)."
  type        = string
  default     = "e2-standard-2"

  validation {
    condition     = length(trimspace(var.control_plane_machine_type)) > 0
    error_message = "control_plane_machine_type must not be empty."
  }
}

variable "worker_machine_type" {
  description = "Machine type of every worker VM."
  type        = string
  default     = "e2-standard-2"

  validation {
    condition     = length(trimspace(var.worker_machine_type)) > 0
    error_message = "worker_machine_type must not be empty."
  }
}

variable "image" {
  description = "Boot image of every VM. Ubuntu 20.04 is one that Kubernetes 1.21 was tested on."
  type        = string
  default     = "ubuntu-os-cloud/ubuntu-2004-lts"

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "disk_size_gb" {
  description = "Boot disk size of every VM, in GB."
  type        = number
  default     = 30

  validation {
    condition     = var.disk_size_gb >= 10 && var.disk_size_gb <= 2000
    error_message = "disk_size_gb must be between 10 and 2000."
  }
}

variable "operator_cidr" {
  description = "The only source range allowed to reach the VMs over SSH: the operator's address, e.g. 203.0.113.7/32."
  type        = string

  # A prefix of /0 in any spelling (0.0.0.0/0, 1.2.3.4/0, ::/0) is the whole
  # internet, so the prefix length is tested, not the text.
  validation {
    condition     = can(cidrhost(var.operator_cidr, 0)) && can(regex("/[0-9]+$", var.operator_cidr)) && try(tonumber(regex("/([0-9]+)$", var.operator_cidr)[0]) > 0, false)
    error_message = "operator_cidr must be a valid CIDR naming the operator's own address, such as 203.0.113.7/32 (find yours with `curl -s ifconfig.me`), never 0.0.0.0/0 or any /0: that opens SSH to the whole internet."
  }
}

# Wide but not world-open: allowed (an office or VPN range), yet worth a word,
# since everyone in the range can try SSH on every node.
check "operator_cidr_is_narrow" {
  assert {
    condition     = try(tonumber(regex("/([0-9]+)$", var.operator_cidr)[0]) >= 16, true)
    error_message = "operator_cidr ${var.operator_cidr} is wider than /16: SSH is open to that whole range. Prefer your own address as a /32."
  }
}

variable "node_cidr" {
  description = "Range the per-region node subnets are cut from (one /+8 subnet for each region used)."
  type        = string
  default     = "10.10.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.node_cidr, 8, 0)) && can(regex("/([0-9]|1[0-9]|2[01])$", var.node_cidr))
    error_message = "node_cidr must be a valid IPv4 CIDR of prefix length /21 or shorter, e.g. 10.10.0.0/16."
  }
}

variable "pod_cidr" {
  description = "Pod network of the cluster (flannel's default); must not overlap node_cidr."
  type        = string
  default     = "10.244.0.0/16"

  validation {
    condition     = can(cidrhost(var.pod_cidr, 0))
    error_message = "pod_cidr must be a valid CIDR such as 10.244.0.0/16."
  }
}

variable "ssh_user" {
  description = "Login name that the SSH key is installed for, and that Ansible connects as."
  type        = string
  default     = "rap"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a valid Linux user name (lower-case, up to 32 characters)."
  }
}

variable "ssh_public_key_path" {
  description = "Path of the SSH public key installed on every VM (the .pub file; the private key never leaves the operator)."
  type        = string
  default     = "~/.ssh/id_ed25519.pub"

  validation {
    condition     = can(regex("\\.pub$", var.ssh_public_key_path))
    error_message = "ssh_public_key_path must name the public key, a file ending in .pub, never the private key."
  }
}

variable "labels" {
  description = "Labels put on every VM, to find and bill the cluster."
  type        = map(string)
  default     = { app = "rap" }
}
