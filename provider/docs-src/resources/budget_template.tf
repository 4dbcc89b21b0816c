resource "aigov_budget_template" "team_default" {
  name        = "team-default"
  budget_name = "team-default"
  budget_labels = {
    "cost-center" = "engineering"
  }

  # Every namespace labelled as a team gets an AIBudget "team-default"; a namespace annotated
  # aigov.dev/budget-limit = "1200.00" gets that limit instead of this one.
  namespace_selector {
    match_expressions {
      key      = "team"
      operator = "Exists"
    }
  }

  limit  = 500
  period = "Monthly"

  selector {
    service_accounts = ["inference"]
  }

  models {
    allow = ["anthropic.claude-*", "amazon.nova-*"]
  }

  alerts {
    sns_topic_arn = aigov_alert_channel.finops.arn
  }
}
