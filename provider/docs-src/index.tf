terraform {
  required_providers {
    aigov = {
      source  = "aigov/aigov"
      version = "~> 0.1"
    }
  }
}

# Credentials come from the standard AWS chain (environment, shared config, SSO, instance role).
provider "aigov" {
  region = "us-east-1"

  # Every AWS call is bounded: a connection within connect_timeout_seconds (default 10), each
  # attempt within attempt_timeout_seconds (default 30), the whole call with its retries within
  # operation_timeout_seconds (default 120), retried max_retries times (default 3) with the SDK's
  # standard backoff, as the AWS provider's max_retries does. An endpoint that accepts
  # connections and never answers fails the run with an error naming the endpoint, instead of
  # hanging it. Errors name the service, the endpoint, the HTTP status or cause, and the fix;
  # sensitive values (webhook URLs) are never quoted in them. ARNs the provider builds take the
  # partition of the region (aws, aws-cn, aws-us-gov, ...).
  # max_retries               = 3
  # connect_timeout_seconds   = 10
  # attempt_timeout_seconds   = 30
  # operation_timeout_seconds = 120

  default_tags {
    tags = {
      managed-by = "terraform"
      cost-owner = "platform"
    }
  }

  # The cluster where aigov's controller runs, for aigov_pricing_override.
  kubernetes {
    config_path = "~/.kube/config"
    context     = "prod"
  }
}

# Against emulators or VPC endpoints, override endpoints per service:
# endpoints {
#   bedrock    = "http://127.0.0.1:15000"
#   budgets    = "http://127.0.0.1:15000"
#   cloudwatch = "http://127.0.0.1:15000"
#   logs       = "http://127.0.0.1:15000"
#   sns        = "http://127.0.0.1:15000"
#   sts        = "http://127.0.0.1:15000"
# }
