# Events out (the relay publishes), commands in (pushed to the service), poison set aside.

resource "google_pubsub_topic" "events" {
  name       = "${local.name}-events"
  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "commands" {
  name       = "${local.name}-commands"
  depends_on = [google_project_service.apis]
}

# Poison commands: the service publishes them here at once (with why), and Pub/Sub forwards
# here what it could not deliver in max_delivery_attempts.
resource "google_pubsub_topic" "dead_letter" {
  name       = "${local.name}-commands-dead-letter"
  depends_on = [google_project_service.apis]
}

# A topic without a subscription keeps nothing: this one holds dead letters for a week.
resource "google_pubsub_subscription" "dead_letter_hold" {
  name                       = "${local.name}-commands-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "commands_push" {
  name                 = "${local.name}-commands-push"
  topic                = google_pubsub_topic.commands.id
  ack_deadline_seconds = 30

  push_config {
    push_endpoint = local.push_url
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = var.push_audience
    }
  }

  # Redelivery of a command that may succeed later (its order not there yet).
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.pubsub_agent_forwards_dead_letters]
}
