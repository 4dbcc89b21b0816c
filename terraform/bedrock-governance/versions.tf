terraform {
  # 1.9 (OpenTofu 1.8): a variable's validation may refer to other variables, which the check of
  # the 5 notifications AWS Budgets allows per budget needs.
  required_version = ">= 1.9"
  required_providers {
    aigov = {
      source  = "aigov/aigov"
      version = ">= 0.1.0"
    }
  }
}
