# Bedrock governance for one AWS account and cluster: where alerts go, where usage records land,
# the account-level backstop budget, per-team spend alarms, negotiated prices, cluster-wide
# budgets over selected namespaces, budget templates stamped into selected namespaces, and Bedrock
# model invocation logging.

locals {
  subscriptions = concat(
    [for e in var.emails : { protocol = "email", endpoint = e }],
    var.webhook_url == null ? [] : [{ protocol = "https", endpoint = var.webhook_url }],
  )
}

resource "aigov_alert_channel" "alerts" {
  name         = "${var.name}-alerts"
  display_name = "AI spend (${var.name})"
  dynamic "subscription" {
    for_each = local.subscriptions
    content {
      protocol = subscription.value.protocol
      endpoint = subscription.value.endpoint
    }
  }
  tags = var.tags
}

resource "aigov_log_group" "usage" {
  name              = "/aigov/${var.name}/usage"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aigov_budget" "bedrock" {
  name      = "${var.name}-bedrock-monthly"
  amount    = var.monthly_limit_usd
  time_unit = "MONTHLY"

  dynamic "notification" {
    for_each = var.notify_at_percent
    content {
      notification_type = "ACTUAL"
      threshold         = notification.value
      alert_channel_arn = aigov_alert_channel.alerts.arn
      emails            = var.emails
    }
  }

  dynamic "notification" {
    for_each = var.forecast_at_percent == null ? [] : [var.forecast_at_percent]
    content {
      notification_type = "FORECASTED"
      threshold         = notification.value
      alert_channel_arn = aigov_alert_channel.alerts.arn
    }
  }

  tags = var.tags
}

resource "aigov_alarm" "team_spend" {
  for_each    = var.team_budgets
  name        = "${var.name}-${each.key}-hourly-spend"
  description = "Team ${each.key} spent more than $${each.value.hourly_limit_usd} on Bedrock in an hour."
  threshold   = each.value.hourly_limit_usd
  period      = 3600
  preset {
    metric    = "spend"
    namespace = each.value.namespace
    budget    = each.value.budget
  }
  alarm_actions = [aigov_alert_channel.alerts.arn]
  tags          = var.tags
}

resource "aigov_alarm" "bedrock_throttles" {
  name        = "${var.name}-bedrock-throttles"
  description = "Bedrock is throttling this account: raise quotas or spread load."
  threshold   = 10
  period      = 300
  preset {
    metric = "bedrock_throttles"
  }
  alarm_actions = [aigov_alert_channel.alerts.arn]
  tags          = var.tags
}

resource "aigov_pricing_override" "negotiated" {
  for_each    = var.pricing_overrides
  name        = "${var.name}-${each.key}"
  model       = each.value.model
  input       = each.value.input
  output      = each.value.output
  cache_read  = each.value.cache_read
  cache_write = each.value.cache_write
  description = "Negotiated price managed by the ${var.name} bedrock-governance module."
}

resource "aigov_cluster_budget" "this" {
  for_each = var.cluster_budgets
  name     = "${var.name}-${each.key}"
  limit    = each.value.limit
  period   = each.value.period

  dynamic "namespace_selector" {
    for_each = each.value.namespace_selector == null ? [] : [each.value.namespace_selector]
    content {
      match_labels = namespace_selector.value.match_labels
    }
  }
}

resource "aigov_budget_template" "this" {
  for_each    = var.budget_templates
  name        = "${var.name}-${each.key}"
  budget_name = each.value.budget_name
  limit       = each.value.limit
  period      = each.value.period

  dynamic "namespace_selector" {
    for_each = each.value.namespace_selector == null ? [] : [each.value.namespace_selector]
    content {
      match_labels = namespace_selector.value.match_labels
    }
  }
}

# Bedrock model invocation logging (the prompts, completions and token counts of every call in
# this account and region) into a log group of its own, when var.invocation_logging is set.
resource "aigov_log_group" "invocations" {
  count             = var.invocation_logging == null ? 0 : 1
  name              = "/aigov/${var.name}/bedrock-invocations"
  retention_in_days = var.invocation_logging.retention_days
  tags              = var.tags
}

resource "aigov_invocation_logging" "this" {
  count                           = var.invocation_logging == null ? 0 : 1
  log_group_name                  = aigov_log_group.invocations[0].name
  role_arn                        = var.invocation_logging.role_arn
  text_data_delivery_enabled      = var.invocation_logging.text_data
  image_data_delivery_enabled     = var.invocation_logging.image_data
  embedding_data_delivery_enabled = var.invocation_logging.embedding_data
  video_data_delivery_enabled     = var.invocation_logging.video_data

  dynamic "large_data_delivery_s3" {
    for_each = var.invocation_logging.large_data_s3_bucket == null ? [] : [var.invocation_logging]
    content {
      bucket_name = large_data_delivery_s3.value.large_data_s3_bucket
      key_prefix  = large_data_delivery_s3.value.large_data_s3_prefix
    }
  }
}
