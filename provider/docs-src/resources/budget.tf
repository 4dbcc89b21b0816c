# The budget is always filtered to Amazon Bedrock (cost_filter = "Service=Amazon Bedrock"), plus
# cost_allocation_tags and linked_accounts when set. A filter changed outside Terraform reads back
# as it is and the plan sets it back; importing a budget filtered otherwise (to EC2, say) is
# refused, since this resource would change its filter. If reading a new budget back fails, it
# stays in the state with its ID (and the error is shown), so it is never forgotten.
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
