# Bedrock model invocation logs (prompts, completions, token counts per call) in CloudWatch Logs,
# next to aigov's usage records: the evidence behind a spend spike.
resource "aigov_log_group" "invocations" {
  name              = "/aigov/bedrock-invocations"
  retention_in_days = 30
}

resource "aigov_invocation_logging" "this" {
  log_group_name = aigov_log_group.invocations.name
  # Trusts bedrock.amazonaws.com; allowed logs:CreateLogStream and logs:PutLogEvents on the group.
  role_arn = "arn:aws:iam::123456789012:role/bedrock-invocation-logging"

  text_data_delivery_enabled      = true
  image_data_delivery_enabled     = false
  embedding_data_delivery_enabled = false
  video_data_delivery_enabled     = false

  # Log data over 100 KB (and binary image data) is delivered to S3.
  large_data_delivery_s3 {
    bucket_name = "example-bedrock-large-logs"
    key_prefix  = "invocations/"
  }
}
