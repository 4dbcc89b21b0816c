//! Long context is billed at its own rates: a `global.` Claude Sonnet 4.5 Converse call with
//! 250,000 input tokens (a 1 MB prompt) and 1,000 output tokens, through the real gateway with
//! a real SDK client, is charged AWS's rates for prompts over 200K tokens ($6.00 input and
//! $22.50 output per 1M): $1.5225, not the $0.765 of the base rates.

use std::collections::HashSet;
use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, converse, pod, pod_ip, served, served_cost};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;

const SONNET_4_5_GLOBAL: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prompt_past_200k_tokens_is_charged_the_long_context_rates() {
    let ns = namespace("long-ctx");
    budget(&ns, "team", "  limit: '100.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    // A 1,000,000-byte prompt: Bedrock may count up to that many tokens (the reservation's
    // bound); the simulator reports 250,000.
    let prompt = format!(
        "[sim:input_tokens=250000] [sim:output_tokens=1000] {}",
        "x".repeat(1_000_000)
    );
    let id = converse(&client, SONNET_4_5_GLOBAL, &prompt, 1000)
        .await
        .expect("a long-context call within the budget");
    let s = served()
        .into_iter()
        .find(|s| s.request_id == id)
        .expect("served");
    assert_eq!((s.input_tokens, s.output_tokens), (250_000, 1_000));
    // 250,000 × $6.00/1M + 1,000 × $22.50/1M, by hand.
    let status = wait_status(&ns, "team", Duration::from_secs(20), |st| {
        st["requests"] == 1
    });
    assert_eq!(status["spent"], "1.5225", "{status:#}");
    let (priced, _) = served_cost(&HashSet::from([id]));
    assert_eq!(priced.to_api_string(), "1.5225", "the price book agrees");
}
