variable "name" {
  description = "Prefix for every object the module creates (topic, log group, budget, alarms)."
  type        = string
}

variable "monthly_limit_usd" {
  description = "The account-level AWS Budgets limit for Amazon Bedrock, in USD per month."
  type        = number
}

variable "notify_at_percent" {
  description = "Thresholds (percent of the limit) at which the budget notifies, on actual spend."
  type        = list(number)
  default     = [50, 80, 100]

  validation {
    condition     = length(var.notify_at_percent) <= 5
    error_message = "AWS Budgets allows at most 5 notifications per budget (including forecast_at_percent); notify_at_percent has more than 5 values."
  }
}

variable "forecast_at_percent" {
  description = "A threshold (percent) on forecasted spend; null for none. Counts toward the 5 notifications AWS Budgets allows per budget."
  type        = number
  default     = 100

  # AWS Budgets allows 5 notifications per budget: the actual thresholds plus this one. Checked
  # here so a plan names the variables to change, instead of the budget failing at apply.
  validation {
    condition     = length(var.notify_at_percent) + (var.forecast_at_percent == null ? 0 : 1) <= 5
    error_message = "AWS Budgets allows at most 5 notifications per budget: notify_at_percent has more than 4 values while forecast_at_percent is set (it is the fifth). Remove thresholds from notify_at_percent, or set forecast_at_percent = null."
  }
}

variable "emails" {
  description = "E-mail addresses that receive alerts."
  type        = list(string)
  default     = []
}

variable "webhook_url" {
  description = "An https webhook (Slack, PagerDuty, ...) that receives alerts; null for none."
  type        = string
  default     = null
  sensitive   = true
}

variable "log_retention_days" {
  description = "Retention of the usage-record log group (a value CloudWatch Logs accepts)."
  type        = number
  default     = 90
}

variable "team_budgets" {
  description = "Per-team spend alarms on the controller's metrics: Kubernetes namespace, AIBudget name and hourly USD threshold."
  type = map(object({
    namespace        = string
    budget           = string
    hourly_limit_usd = number
  }))
  default = {}
}

variable "pricing_overrides" {
  description = "Negotiated prices (USD per 1M tokens) written as AIModelPrice objects in the cluster."
  type = map(object({
    model       = string
    input       = number
    output      = number
    cache_read  = optional(number)
    cache_write = optional(number)
  }))
  default = {}
}

variable "tags" {
  description = "Tags for every AWS object."
  type        = map(string)
  default     = {}
}
