# The service: the ASGI app of orders_gcp.cloud_run on uvicorn, the outbox relay inside it.

resource "google_cloud_run_v2_service" "orders" {
  name                = local.name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  # invoker = "app": the app verifies every token itself (Cloud Run would strip a verified
  # token's signature). invoker = "iam": Cloud Run checks roles/run.invoker first.
  invoker_iam_disabled = var.invoker == "app"
  # Push tokens are minted for this audience (a URL-independent one: no dependency cycle).
  custom_audiences = [var.push_audience]

  template {
    service_account                  = google_service_account.run.email
    timeout                          = "15s"
    max_instance_request_concurrency = 64

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # Instance-based billing (CPU always allocated): the relay publishes between requests.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      env {
        name  = "ORDERS_GCP_PROJECT"
        value = var.project
      }
      env {
        name  = "ORDERS_GCP_DATABASE"
        value = var.database
      }
      env {
        name  = "ORDERS_GCP_EVENTS_TOPIC"
        value = google_pubsub_topic.events.id
      }
      env {
        name  = "ORDERS_GCP_DEAD_LETTER_TOPIC"
        value = google_pubsub_topic.dead_letter.id
      }
      env {
        name  = "ORDERS_GCP_PUSH_AUDIENCE"
        value = var.push_audience
      }
      env {
        name  = "ORDERS_GCP_PUSH_SERVICE_ACCOUNTS"
        value = google_service_account.push.email
      }
      # platform trusts the claims Cloud Run verified: only where Cloud Run verifies every
      # caller. With allUsers as invoker (public) it admits unsigned tokens.
      env {
        name  = "ORDERS_GCP_PUSH_VERIFY"
        value = var.invoker == "iam" && !var.public ? "platform" : "token"
      }
      env {
        name  = "ORDERS_JWT_ISSUER"
        value = var.jwt_issuer
      }
      env {
        name  = "ORDERS_JWT_AUDIENCE"
        value = var.jwt_audience
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        timeout_seconds   = 2
        failure_threshold = 15
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 10
      }
    }
  }

  depends_on = [google_project_service.apis, google_project_iam_member.run_firestore]
}
