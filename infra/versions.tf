# Pinned versions: a newer major of the google provider renames arguments, and
# an untested Terraform may change plan output that rap.cloud reads.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.40"
    }
  }
}

# No credentials here: the provider finds them in the user's environment
# (GOOGLE_APPLICATION_CREDENTIALS or gcloud's application-default login).
provider "google" {
  project = var.project_id
  region  = local.control_plane_region
}
