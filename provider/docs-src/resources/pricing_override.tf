resource "aigov_pricing_override" "sonnet" {
  name           = "sonnet-2026-agreement"
  model          = "anthropic.claude-sonnet-4-5*"
  input          = 2.7
  output         = 13.5
  cache_read     = 0.27
  cache_write    = 3.375
  effective_from = "2026-01-01T00:00:00Z"
  description    = "2026 enterprise agreement: 10% off list"
}
