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
#   budgets    = "http://127.0.0.1:15000"
#   cloudwatch = "http://127.0.0.1:15000"
#   logs       = "http://127.0.0.1:15000"
#   sns        = "http://127.0.0.1:15000"
#   sts        = "http://127.0.0.1:15000"
# }
