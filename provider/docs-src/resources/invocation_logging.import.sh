# One configuration per account and region: import it by the provider's region.
terraform import aigov_invocation_logging.this us-east-1
