output "alert_channel_arn" {
  description = "The SNS topic alerts go to: use it as AIBudget.spec.alerts.snsTopicArn."
  value       = aigov_alert_channel.alerts.arn
}

output "usage_log_group" {
  description = "The log group for the controller's usage records (its --emf-log-group)."
  value       = aigov_log_group.usage.name
}

output "budget_id" {
  description = "The AWS Budgets budget, as ACCOUNT_ID:NAME."
  value       = aigov_budget.bedrock.id
}

output "alarm_arns" {
  description = "The alarms, by name."
  value = merge(
    { for k, a in aigov_alarm.team_spend : a.name => a.arn },
    { (aigov_alarm.bedrock_throttles.name) = aigov_alarm.bedrock_throttles.arn },
  )
}

output "cluster_budget_names" {
  description = "The ClusterAIBudget objects, by cluster_budgets key."
  value       = { for k, b in aigov_cluster_budget.this : k => b.name }
}

output "budget_template_names" {
  description = "The AIBudgetTemplate objects, by budget_templates key."
  value       = { for k, t in aigov_budget_template.this : k => t.name }
}

output "invocation_log_group" {
  description = "The log group Bedrock's model invocation logs go to; null when invocation_logging is null."
  value       = one(aigov_log_group.invocations[*].name)
}

output "invocation_logging_region" {
  description = "The region whose Bedrock invocation logging the module configures (the ID of aigov_invocation_logging); null when invocation_logging is null."
  value       = one(aigov_invocation_logging.this[*].id)
}
