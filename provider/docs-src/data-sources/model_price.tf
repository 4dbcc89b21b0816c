data "aigov_model_price" "sonnet" {
  model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
}

output "sonnet_cost_of_a_million_cached_reads" {
  value = data.aigov_model_price.sonnet.cache_read # USD, exact
}
