# aigov's cost policy as code, applied to the local environment by the README's first command
# (tests/demo.sh). Against real AWS, drop the endpoints block and the kubeconfig default.

terraform {
  required_providers {
    aigov = {
      source  = "aigov/aigov"
      version = "0.1.0"
    }
  }
}

variable "aws_endpoint" {
  description = "Endpoint of every AWS service (the local moto); null for real AWS."
  type        = string
  default     = "http://127.0.0.1:15000"
}

variable "alert_inbox_queue_arn" {
  description = "An SQS queue that also receives every alert (the demo reads alerts from it); null for none."
  type        = string
  default     = null
}

variable "kubeconfig" {
  description = "The cluster's kubeconfig."
  type        = string
  default     = "/tmp/aigov-env/kubeconfig"
}

provider "aigov" {
  region = "us-east-1"
  endpoints {
    bedrock    = var.aws_endpoint
    budgets    = var.aws_endpoint
    cloudwatch = var.aws_endpoint
    logs       = var.aws_endpoint
    sns        = var.aws_endpoint
    sts        = var.aws_endpoint
  }
  default_tags {
    tags = { managed-by = "terraform", product = "aigov" }
  }
  kubernetes {
    config_path = var.kubeconfig
  }
}

# Where alerts go: finance by e-mail, on-call's webhook (sensitive), and a queue a bot reads.
resource "aigov_alert_channel" "finops" {
  name         = "aigov-finops"
  display_name = "AI spend"
  subscription {
    protocol = "email"
    endpoint = "finops@example.com"
  }
  subscription {
    protocol             = "https"
    endpoint             = "https://hooks.example.com/services/T000/B000/replace-me"
    raw_message_delivery = true
  }
  dynamic "subscription" {
    for_each = var.alert_inbox_queue_arn == null ? [] : [var.alert_inbox_queue_arn]
    content {
      protocol             = "sqs"
      endpoint             = subscription.value
      raw_message_delivery = true
    }
  }
}

# Where escalations go when a budget stays exhausted without acknowledgement.
resource "aigov_alert_channel" "oncall" {
  name         = "aigov-oncall"
  display_name = "AI spend escalation"
  subscription {
    protocol = "email"
    endpoint = "oncall@example.com"
  }
}

# Where the controller writes its usage records (--emf-log-group).
resource "aigov_log_group" "usage" {
  name              = "/aigov/usage"
  retention_in_days = 90
}

# Bedrock's own record of every call (the controller's --invocation-log-group): the second
# source the controller reconciles its ledger with, charging calls a killed gateway never
# reported and catching calls made around the gateway.
resource "aigov_log_group" "invocations" {
  name              = "/aigov/bedrock-invocations"
  retention_in_days = 30
}

resource "aigov_invocation_logging" "this" {
  log_group_name = aigov_log_group.invocations.name
  # Trusts bedrock.amazonaws.com; allowed logs:CreateLogStream and logs:PutLogEvents on the group.
  role_arn                   = "arn:aws:iam::123456789012:role/bedrock-invocation-logging"
  text_data_delivery_enabled = false
}

# The account-level backstop: all Bedrock spend in the account, monthly.
resource "aigov_budget" "bedrock" {
  name      = "bedrock-monthly"
  amount    = 2000
  time_unit = "MONTHLY"
  notification {
    notification_type = "ACTUAL"
    threshold         = 80
    alert_channel_arn = aigov_alert_channel.finops.arn
  }
  notification {
    notification_type = "FORECASTED"
    threshold         = 100
    alert_channel_arn = aigov_alert_channel.finops.arn
    emails            = ["finops@example.com"]
  }
}

# Team research spends more than $5 in an hour: the controller's CostUSD metric for its AIBudget.
resource "aigov_alarm" "research_spend" {
  name        = "team-research-hourly-spend"
  description = "team-research spent more than $5 on Bedrock in an hour"
  threshold   = 5
  period      = 3600
  preset {
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
  }
  alarm_actions = [aigov_alert_channel.finops.arn]
}

# One feature inside that budget: research-daily declares spec.attribution.keys [feature, user],
# so the controller's usage records make each declared key a metric dimension (meta.feature).
resource "aigov_alarm" "research_dataset_analysis_spend" {
  name        = "team-research-dataset-analysis-hourly-spend"
  description = "team-research's dataset-analysis feature spent more than $4 on Bedrock in an hour"
  threshold   = 4
  period      = 3600
  preset {
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
    key       = "feature"
    value     = "dataset-analysis"
  }
  alarm_actions = [aigov_alert_channel.finops.arn]
}

# A negotiated price for Claude 3.5 Haiku, reviewed in a pull request like the rest.
resource "aigov_pricing_override" "haiku" {
  name        = "haiku-negotiated"
  model       = "anthropic.claude-3-5-haiku*"
  input       = 0.72
  output      = 3.6
  cache_read  = 0.072
  description = "2026 agreement: 10% off list"
}

# What the gateway will charge for Haiku through a US cross-region profile, override included.
data "aigov_model_price" "haiku" {
  model      = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
  depends_on = [aigov_pricing_override.haiku]
}

output "alert_channel_arn" {
  description = "Put this in AIBudget.spec.alerts.snsTopicArn (examples/budgets/ do)."
  value       = aigov_alert_channel.finops.arn
}

output "escalation_channel_arn" {
  description = "Put this in AIBudget.spec.escalation[].snsTopicArn."
  value       = aigov_alert_channel.oncall.arn
}

output "haiku_price_per_million_tokens" {
  value = {
    input      = data.aigov_model_price.haiku.input
    output     = data.aigov_model_price.haiku.output
    cache_read = data.aigov_model_price.haiku.cache_read
    source     = data.aigov_model_price.haiku.source
  }
}
