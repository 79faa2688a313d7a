# Two identities, each with only what it needs:
#   run  - the service: Firestore data in this database, publish to the events and
#          dead-letter topics. Nothing else.
#   push - what Pub/Sub signs pushes as: invoke the service. Nothing else.

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_service_account" "run" {
  account_id   = "${local.name}-run"
  display_name = "orders-core Cloud Run service"
}

resource "google_service_account" "push" {
  account_id   = "${local.name}-push"
  display_name = "orders-core Pub/Sub push"
}

# roles/datastore.user is the narrowest predefined role that reads and writes documents;
# the condition holds it to this one database.
resource "google_project_iam_member" "run_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.run.email}"
  condition {
    title      = "only-the-orders-database"
    expression = "resource.name == \"projects/${var.project}/databases/${var.database}\""
  }
}

resource "google_pubsub_topic_iam_member" "run_publishes_events" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.run.email}"
}

resource "google_pubsub_topic_iam_member" "run_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.run.email}"
}

# Pub/Sub's service agent mints the push's OIDC token as the push account...
resource "google_service_account_iam_member" "pubsub_agent_signs_as_push" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# ...and, for the dead-letter policy, publishes to the dead-letter topic and acks the
# original on the push subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_forwards_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.commands_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Who may invoke the service. The push account always; var.invokers with invoker = iam;
# allUsers only when public = true is asked for.
resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  name     = google_cloud_run_v2_service.orders.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  name     = google_cloud_run_v2_service.orders.name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count    = var.public ? 1 : 0
  name     = google_cloud_run_v2_service.orders.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}
