output "url" {
  description = "The service's URL."
  value       = google_cloud_run_v2_service.orders.uri
}

output "events_topic" {
  description = "Subscribe here for order events (CloudEvents in the Pub/Sub binding, ordering key = order id)."
  value       = google_pubsub_topic.events.id
}

output "commands_topic" {
  description = "Publish command CloudEvents here; they are pushed to the service."
  value       = google_pubsub_topic.commands.id
}

output "dead_letter_subscription" {
  description = "Poison commands, with their content, for a week."
  value       = google_pubsub_subscription.dead_letter_hold.id
}
