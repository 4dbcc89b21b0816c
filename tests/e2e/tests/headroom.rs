//! Refusals for want of headroom name the budget that is really short, with a real SDK client
//! through the real gateway:
//!
//! - a pod selected by two budgets, one that can never fit the call (`z-tiny`, $1.00, the call
//!   could cost $2.40) and one with plenty (`a-big`, $20.00): every call is `z-tiny`'s 403.
//!   Before, back-to-back calls alternated between that 403 and a 429 "no free headroom …
//!   calls in flight hold the rest" from `a-big` with nothing in flight (its slice, grown for
//!   a call `z-tiny` refused, was given back while the call waited for `z-tiny`'s grant);
//! - a budget created moments ago: its first call waits for its first grant instead of a 429.

use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;

/// Claude Opus 4: 32,000 output tokens cost $2.40, more than `z-tiny` has.
const OPUS: &str = "anthropic.claude-opus-4-20250514-v1:0";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_one_budget_can_never_fit_is_always_its_403_never_a_429_from_another() {
    let ns = namespace("headroom-two");
    budget(&ns, "a-big", "  limit: '20.00'\n");
    budget(&ns, "z-tiny", "  limit: '1.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let mut refusals = Vec::new();
    for _ in 0..8 {
        let err = converse(&client, OPUS, "too dear for z-tiny", 32_000)
            .await
            .expect_err("z-tiny can never fit a $2.40 call");
        refusals.push(match err {
            aws_sdk_bedrockruntime::Error::AccessDeniedException(e) => {
                format!("403 {}", e.message().unwrap_or_default())
            }
            aws_sdk_bedrockruntime::Error::ThrottlingException(e) => {
                format!("429 {}", e.message().unwrap_or_default())
            }
            other => format!("other {other:?}"),
        });
    }
    let tiny = format!("403 AIBudget {ns}/z-tiny has $1.00 left of its $1.00 limit");
    for refusal in &refusals {
        assert!(
            refusal.starts_with(&tiny),
            "every refusal is z-tiny's 403: {refusals:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_created_moments_ago_admits_its_first_call() {
    let ns = namespace("headroom-new");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    // Each budget is called the moment it exists: the gateway's watch has it within moments,
    // while the ledger may not have opened its account yet (nothing can be granted on it).
    for n in 0..5 {
        budget(&ns, &format!("fresh-{n}"), "  limit: '10.00'\n");
        converse(&client, HAIKU, "first call [sim:output_tokens=5]", 10)
            .await
            .unwrap_or_else(|e| {
                panic!("fresh-{n}: the first call waits for its first grant: {e:?}")
            });
    }
    for n in 0..5 {
        wait_status(&ns, &format!("fresh-{n}"), Duration::from_secs(20), |s| {
            s["requests"].as_u64() >= Some(1)
        });
    }
}
