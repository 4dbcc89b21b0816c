variable "name" {
  description = "Prefix for every object the module creates (topic, log groups, budget, alarms, prices, cluster budgets, budget templates)."
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

variable "cluster_budgets" {
  description = "Cluster-wide budgets (ClusterAIBudget objects, named NAME-KEY): a USD limit per period over every namespace whose labels match namespace_selector.match_labels (no namespace_selector: every namespace), enforced together with the AIBudgets inside them."
  type = map(object({
    limit  = number
    period = optional(string, "Monthly")
    namespace_selector = optional(object({
      match_labels = map(string)
    }))
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.cluster_budgets) : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", k))])
    error_message = "cluster_budgets keys become part of Kubernetes object names (NAME-KEY): use lower-case letters, digits and '-', starting and ending with a letter or digit."
  }

  validation {
    condition     = alltrue([for b in values(var.cluster_budgets) : b.limit > 0])
    error_message = "Every cluster_budgets limit must be greater than zero (USD per period, up to 6 decimal places)."
  }

  validation {
    condition     = alltrue([for b in values(var.cluster_budgets) : contains(["Daily", "Weekly", "Monthly", "Quarterly", "Yearly", "Credit"], b.period)])
    error_message = "Every cluster_budgets period must be one of Daily, Weekly, Monthly, Quarterly, Yearly or Credit."
  }

  validation {
    condition     = alltrue([for b in values(var.cluster_budgets) : b.namespace_selector == null ? true : length(b.namespace_selector.match_labels) > 0])
    error_message = "A cluster_budgets namespace_selector needs at least one match_labels pair; leave namespace_selector out to cover every namespace."
  }
}

variable "budget_templates" {
  description = "Budget templates (AIBudgetTemplate objects, named NAME-KEY): the controller keeps an AIBudget budget_name with this limit and period in every namespace whose labels match namespace_selector.match_labels (no namespace_selector: every namespace)."
  type = map(object({
    budget_name = string
    limit       = number
    period      = optional(string, "Monthly")
    namespace_selector = optional(object({
      match_labels = map(string)
    }))
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.budget_templates) : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", k))])
    error_message = "budget_templates keys become part of Kubernetes object names (NAME-KEY): use lower-case letters, digits and '-', starting and ending with a letter or digit."
  }

  validation {
    condition     = alltrue([for t in values(var.budget_templates) : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", t.budget_name)) && length(t.budget_name) <= 253])
    error_message = "Every budget_templates budget_name is the name of the AIBudget stamped into each namespace: a DNS subdomain (lower-case letters, digits, '-' and '.', at most 253 characters), such as \"team-default\"."
  }

  validation {
    condition     = alltrue([for t in values(var.budget_templates) : t.limit > 0])
    error_message = "Every budget_templates limit must be greater than zero (USD per period, up to 6 decimal places)."
  }

  validation {
    condition     = alltrue([for t in values(var.budget_templates) : contains(["Daily", "Weekly", "Monthly", "Quarterly", "Yearly", "Credit"], t.period)])
    error_message = "Every budget_templates period must be one of Daily, Weekly, Monthly, Quarterly, Yearly or Credit."
  }

  validation {
    condition     = alltrue([for t in values(var.budget_templates) : t.namespace_selector == null ? true : length(t.namespace_selector.match_labels) > 0])
    error_message = "A budget_templates namespace_selector needs at least one match_labels pair; leave namespace_selector out to stamp the AIBudget into every namespace."
  }
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

variable "invocation_logging" {
  description = "Bedrock model invocation logging for the provider's account and region into a log group /aigov/NAME/bedrock-invocations, written by the IAM role role_arn (trusting bedrock.amazonaws.com); null (the default) leaves invocation logging alone. Bedrock keeps one configuration per account and region: set this in one module instance per region."
  type = object({
    role_arn             = string
    retention_days       = optional(number, 30)
    text_data            = optional(bool, true)
    image_data           = optional(bool, false)
    embedding_data       = optional(bool, false)
    video_data           = optional(bool, false)
    large_data_s3_bucket = optional(string)
    large_data_s3_prefix = optional(string)
  })
  default = null

  validation {
    condition     = var.invocation_logging == null ? true : can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/", var.invocation_logging.role_arn))
    error_message = "invocation_logging.role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/bedrock-invocation-logging."
  }

  validation {
    condition     = var.invocation_logging == null ? true : (var.invocation_logging.large_data_s3_prefix == null || var.invocation_logging.large_data_s3_bucket != null)
    error_message = "invocation_logging.large_data_s3_prefix needs large_data_s3_bucket: the prefix is of objects in that bucket."
  }
}

variable "tags" {
  description = "Tags for every AWS object."
  type        = map(string)
  default     = {}
}
