variable "project" {
  description = "The Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Where Cloud Run runs (and the Firestore database, unless firestore_location says otherwise)."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "The Firestore database's location: a region (cheaper) or a multi-region such as eur3 or nam5."
  type        = string
  default     = "europe-west1"
}

variable "database" {
  description = "The Firestore database's name; (default) is the one with a free quota."
  type        = string
  default     = "(default)"
}

variable "image" {
  description = "The container image (deploy/gcp/Dockerfile), e.g. europe-west1-docker.pkg.dev/PROJECT/orders/orders-core:0.1.0."
  type        = string
}

variable "service_name" {
  description = "The Cloud Run service's name (also the prefix of the topics and service accounts)."
  type        = string
  default     = "orders-core"
}

variable "invoker" {
  description = <<-EOT
    Who checks the caller. "iam" (default): Cloud Run IAM; only the push service account and
    var.invokers may invoke, the app checks the claims Cloud Run verified. "app": Cloud Run's
    IAM check is off and the app verifies every token itself (for HTTP callers with tokens of
    any OIDC issuer); reachable by anyone, answered only with a valid token.
  EOT
  type        = string
  default     = "iam"
  validation {
    condition     = contains(["iam", "app"], var.invoker)
    error_message = "invoker must be iam or app."
  }
}

variable "invokers" {
  description = "IAM members allowed to call the HTTP API with invoker = iam (user:, group:, serviceAccount:). Never allUsers unless public is true."
  type        = list(string)
  default     = []
}

variable "public" {
  description = "Grant roles/run.invoker to allUsers (the app still verifies JWTs). Off unless you ask."
  type        = bool
  default     = false
}

variable "jwt_issuer" {
  description = "The OIDC issuer of HTTP callers' tokens (https://accounts.google.com for Google ID tokens)."
  type        = string
  default     = "https://accounts.google.com"
}

variable "jwt_audience" {
  description = "The audience HTTP callers' tokens carry."
  type        = string
}

variable "push_audience" {
  description = "The OIDC audience of push tokens; also a custom audience of the Cloud Run service."
  type        = string
  default     = "orders-core-push"
}

variable "min_instances" {
  description = "Instances kept running. The relay runs inside the service: at least 1 keeps events flowing without traffic."
  type        = number
  default     = 1
}

variable "max_instances" {
  description = "The most instances Cloud Run may start (a cost ceiling)."
  type        = number
  default     = 10
}

variable "max_delivery_attempts" {
  description = "Pushes of one command before Pub/Sub itself dead-letters it (5 to 100)."
  type        = number
  default     = 10
}

variable "billing_account" {
  description = "The billing account id (XXXXXX-XXXXXX-XXXXXX) the budget alert watches."
  type        = string
}

variable "monthly_budget" {
  description = "The monthly budget in the billing account's currency; alerts at 50, 90 and 100 %."
  type        = number
  default     = 100
}

variable "deletion_protection" {
  description = "Protect the database and the service from terraform destroy (set false to tear down)."
  type        = bool
  default     = true
}
