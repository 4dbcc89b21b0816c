terraform {
  required_version = ">= 1.6"
  required_providers {
    aigov = {
      source  = "aigov/aigov"
      version = ">= 0.1.0"
    }
  }
}
