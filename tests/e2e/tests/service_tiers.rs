//! Service tiers through the gateway: a call that asks Bedrock for the Priority or Flex tier
//! (Converse's `serviceTier`, InvokeModel's `X-Amzn-Bedrock-Service-Tier`) is reserved and
//! charged at that tier's rates, to the micro-dollar; a tier Bedrock does not know is refused
//! with a ValidationException naming the field, and costs nothing.

use std::collections::HashMap;
use std::time::Duration;

use aigov_api::Usd;
use aigov_api::pricing::{InvocationMode, PriceBook, ServiceTier, Usage};
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, pod, pod_ip, served, user};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{InferenceConfiguration, ServiceTierType};

/// gpt-oss-120b: Flex is half of Standard on the AWS Price List; Priority is the assumed +75%.
const MODEL: &str = "openai.gpt-oss-120b-1:0";

fn tier(wire: &str) -> aws_sdk_bedrockruntime::types::ServiceTier {
    aws_sdk_bedrockruntime::types::ServiceTier::builder()
        .r#type(ServiceTierType::from(wire))
        .build()
        .expect("tier")
}

async fn converse_in(
    client: &aws_sdk_bedrockruntime::Client,
    wire: &str,
) -> Result<String, String> {
    client
        .converse()
        .model_id(MODEL)
        .messages(user("tiered [sim:output_tokens=300]"))
        .inference_config(InferenceConfiguration::builder().max_tokens(400).build())
        .service_tier(tier(wire))
        .send()
        .await
        .map(|out| out.request_id().unwrap_or_default().to_owned())
        .map_err(|e| format!("{:?}", aws_sdk_bedrockruntime::Error::from(e)))
}

async fn invoke_in(client: &aws_sdk_bedrockruntime::Client, wire: &str) -> Result<String, String> {
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": "tiered [sim:output_tokens=200]"}],
        "max_completion_tokens": 300,
    });
    client
        .invoke_model()
        .model_id(MODEL)
        .body(Blob::new(body.to_string()))
        .service_tier(ServiceTierType::from(wire))
        .send()
        .await
        .map(|out| out.request_id().unwrap_or_default().to_owned())
        .map_err(|e| format!("{:?}", aws_sdk_bedrockruntime::Error::from(e)))
}

/// What each call the simulator served under `ids` costs in its tier, by hand from its tokens.
fn expected(ids: &HashMap<String, ServiceTier>) -> Usd {
    let book = PriceBook::default();
    served()
        .into_iter()
        .filter_map(|s| {
            let tier = *ids.get(&s.request_id)?;
            let usage = Usage {
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
                ..Usage::default()
            };
            let model = aigov_api::model::resolve(&s.model_id);
            let at = jiff::Timestamp::now();
            Some(
                book.cost_in(&model, &usage, InvocationMode::OnDemand, tier, at)
                    .amount,
            )
        })
        .fold(Usd::ZERO, |a, b| a + b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_priority_and_flex_are_charged_their_tiers_rates_and_an_unknown_tier_is_refused() {
    let ns = namespace("tiers");
    budget(&ns, "team", "  limit: '5.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;

    let mut ids = HashMap::new();
    for (wire, tier) in [
        ("default", ServiceTier::Standard),
        ("priority", ServiceTier::Priority),
        ("flex", ServiceTier::Flex),
    ] {
        ids.insert(converse_in(&client, wire).await.expect(wire), tier);
        ids.insert(invoke_in(&client, wire).await.expect(wire), tier);
    }
    let want = expected(&ids);
    let standard_only: HashMap<String, ServiceTier> = ids
        .keys()
        .map(|id| (id.clone(), ServiceTier::Standard))
        .collect();
    assert_ne!(want, expected(&standard_only), "the tiers change the price");
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 6);
    assert_eq!(
        s["spent"].as_str().map(|v| Usd::parse(v).unwrap()),
        Some(want),
        "every call charged at its tier's rates: {s:#}"
    );

    for refused in [
        converse_in(&client, "standard").await,
        invoke_in(&client, "turbo").await,
    ] {
        let message = refused.expect_err("an unknown tier");
        assert!(
            message.contains("ValidationException")
                && message.contains("serviceTier.type / X-Amzn-Bedrock-Service-Tier"),
            "{message}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = wait_status(&ns, "team", Duration::from_secs(5), |_| true);
    assert_eq!(after["spent"], s["spent"], "a refused tier costs nothing");
}
