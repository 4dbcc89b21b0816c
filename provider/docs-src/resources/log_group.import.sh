terraform import aigov_log_group.usage /aigov/usage
