# orders-core on Google Cloud: Cloud Run in front, Firestore underneath, Pub/Sub around.
# README.md says how to deploy, configure and tear down, and what it costs.

locals {
  name     = var.service_name
  push_url = "${google_cloud_run_v2_service.orders.uri}/pubsub/push"
  apis = [
    "run.googleapis.com",
    "firestore.googleapis.com",
    "pubsub.googleapis.com",
    "iam.googleapis.com",
    "billingbudgets.googleapis.com",
  ]
}

data "google_project" "this" {}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}

# -- Firestore --------------------------------------------------------------------------

resource "google_firestore_database" "orders" {
  name                    = var.database
  location_id             = var.firestore_location
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = "DELETE"
  depends_on              = [google_project_service.apis]
}

# The customer listing's queries (orders_gcp.documents.INDEXES): by customer, and by
# customer and owner, oldest first.
resource "google_firestore_index" "orders_by_customer" {
  database   = google_firestore_database.orders.name
  collection = "orders"
  fields {
    field_path = "customerId"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdUs"
    order      = "ASCENDING"
  }
  fields {
    field_path = "orderId"
    order      = "ASCENDING"
  }
}

resource "google_firestore_index" "orders_by_customer_and_owner" {
  database   = google_firestore_database.orders.name
  collection = "orders"
  fields {
    field_path = "customerId"
    order      = "ASCENDING"
  }
  fields {
    field_path = "owner"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdUs"
    order      = "ASCENDING"
  }
  fields {
    field_path = "orderId"
    order      = "ASCENDING"
  }
}

# Delivered outbox entries expire (orders_gcp.firestore_outbox sets expireAt a week on).
resource "google_firestore_field" "outbox_ttl" {
  database   = google_firestore_database.orders.name
  collection = "outbox"
  field      = "expireAt"
  ttl_config {}
  index_config {}
}

# Large values no query filters on: no single-field index entries to write and store.
resource "google_firestore_field" "unindexed" {
  for_each = {
    "orders/body"         = ["orders", "body"]
    "outbox/record"       = ["outbox", "record"]
    "idempotency/body"    = ["idempotency", "body"]
    "outbox/lastError"    = ["outbox", "lastError"]
    "orders/lastPosition" = ["orders", "lastPosition"]
  }
  database   = google_firestore_database.orders.name
  collection = each.value[0]
  field      = each.value[1]
  index_config {}
}
