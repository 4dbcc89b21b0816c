resource "aigov_cluster_budget" "production" {
  name      = "production-bedrock"
  limit     = 50000
  period    = "Monthly"
  time_zone = "Europe/Berlin"

  namespace_selector {
    match_labels = { "aigov.dev/tier" = "production" }
    match_expressions {
      key      = "team"
      operator = "NotIn"
      values   = ["sandbox"]
    }
  }

  models {
    deny = ["anthropic.claude-opus-*"]
  }

  thresholds = [50, 80, 95, 100]

  enforcement {
    action                         = "Throttle"
    soft_limit_percent             = 90
    soft_limit_requests_per_minute = 600
    fail_mode                      = "Closed"
  }

  alerts {
    sns_topic_arn = aigov_alert_channel.finops.arn
    cooldown      = "30m"
  }
}
