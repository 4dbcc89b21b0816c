# Create refuses an SNS topic of the same name (CreateTopic would return it as if new): it may belong to another state. The error gives the import command.
resource "aigov_alert_channel" "finops" {
  name         = "aigov-finops"
  display_name = "AI spend"

  subscription {
    protocol = "email"
    endpoint = "finops@example.com"
  }

  subscription {
    protocol             = "https"
    endpoint             = var.oncall_webhook_url # sensitive
    raw_message_delivery = true
  }

  subscription {
    protocol = "sqs"
    endpoint = "arn:aws:sqs:us-east-1:123456789012:aigov-alerts"
  }
}
