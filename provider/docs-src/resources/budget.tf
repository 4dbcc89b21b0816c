resource "aigov_budget" "bedrock" {
  name      = "bedrock-monthly"
  amount    = 2000
  time_unit = "MONTHLY"

  # Only the research team's Bedrock spend (a cost allocation tag).
  cost_allocation_tags = { team = "research" }

  notification {
    notification_type = "ACTUAL"
    threshold         = 80
    alert_channel_arn = aigov_alert_channel.finops.arn
  }

  notification {
    notification_type = "FORECASTED"
    threshold         = 100
    emails            = ["finops@example.com"]
  }
}
