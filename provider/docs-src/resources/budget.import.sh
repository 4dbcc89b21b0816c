terraform import aigov_budget.bedrock 123456789012:bedrock-monthly
