# The controller's usage records (aigov-controller --emf-log-group /aigov/usage).
resource "aigov_log_group" "usage" {
  name              = "/aigov/usage"
  retention_in_days = 90
  kms_key_id        = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
}
