# Create refuses an alarm of the same name (PutMetricAlarm would overwrite it): it may belong to another state. The error gives the import command.
# A team's AIBudget spends more than $25 in an hour (the controller's CostUSD metric).
resource "aigov_alarm" "research_spend" {
  name      = "team-research-hourly-spend"
  threshold = 25
  period    = 3600
  preset {
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
  }
  alarm_actions = [aigov_alert_channel.finops.arn]
}

# One value of an attribution key the budget declares (spec.attribution.keys: [feature, user]):
# the controller makes each declared key a dimension (meta.feature) beside Namespace and Budget.
resource "aigov_alarm" "search_spend" {
  name      = "team-research-search-hourly-spend"
  threshold = 10
  period    = 3600
  preset {
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
    key       = "feature"
    value     = "search"
  }
  alarm_actions = [aigov_alert_channel.finops.arn]
}

# Bedrock throttles one model (raw mode: any CloudWatch metric).
resource "aigov_alarm" "sonnet_throttles" {
  name      = "bedrock-sonnet-throttles"
  threshold = 10
  period    = 60
  metric {
    namespace   = "AWS/Bedrock"
    metric_name = "InvocationThrottles"
    dimensions  = { ModelId = "anthropic.claude-sonnet-4-5-20250929-v1:0" }
  }
  alarm_actions = [aigov_alert_channel.finops.arn]
}
