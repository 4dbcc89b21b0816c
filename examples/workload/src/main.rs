//! A sample workload: calls Bedrock's Converse API with `aws-sdk-bedrockruntime` exactly as it
//! would without aigov. The only change a team makes is the endpoint, set outside the code:
//!
//! ```sh
//! AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://aigov-gateway.aigov-system.svc:8080
//! ```
//!
//! Usage: `chat MODEL_ID CALLS [MAX_TOKENS]`; the prompt comes from `PROMPT`. Each call is
//! tagged with Bedrock's request metadata (Converse `requestMetadata`): `feature` from
//! `FEATURE` (default `chat`) and `user`, the end user it serves (`user-1` to `user-3` in turn
//! here), so `kubectl aigov report --by feature` can say who inside the workload spent what.
//! Each call's
//! outcome is printed; a refusal from a budget arrives as the Bedrock error any SDK knows
//! (`ThrottlingException`, retried by the SDK; `AccessDeniedException`, which stops the loop)
//! with a message naming the AIBudget, the spend, the limit and when it resets.
//!
//! For the local demo only, `AIGOV_DEMO_SOURCE_IP` makes connections leave from the address
//! the demo's pod object carries (in a cluster the pod's own IP does this by itself).
#![forbid(unsafe_code)]

use anyhow::Context as _;
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: chat MODEL_ID CALLS [MAX_TOKENS]";
    let model = args.next().context(usage)?;
    let calls: u32 = args
        .next()
        .context(usage)?
        .parse()
        .context("CALLS must be a whole number")?;
    let max_tokens: i32 = match args.next() {
        Some(n) => n.parse().context("MAX_TOKENS must be a whole number")?,
        None => 512,
    };
    let feature = std::env::var("FEATURE").unwrap_or_else(|_| "chat".to_owned());
    let prompt = std::env::var("PROMPT")
        .unwrap_or_else(|_| "Summarise our incident report in three bullet points.".to_owned());

    let mut config = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Ok(source) = std::env::var("AIGOV_DEMO_SOURCE_IP") {
        let source = source
            .parse()
            .context("AIGOV_DEMO_SOURCE_IP must be an IP address")?;
        config = config.http_client(aigov_example_workload::http_client_from(source));
    }
    let client = aws_sdk_bedrockruntime::Client::new(&config.load().await);

    let (mut answered, mut refused) = (0, 0);
    for n in 0..calls {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(format!("{prompt} (#{n})")))
            .build()?;
        let call = client
            .converse()
            .model_id(&model)
            .messages(message)
            .request_metadata("feature", &feature)
            .request_metadata("user", format!("user-{}", n % 3 + 1))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens)
                    .build(),
            )
            .send()
            .await;
        match call {
            Ok(out) => {
                answered += 1;
                let usage = out.usage();
                println!(
                    "call {n}: {} in / {} out",
                    usage.map_or(0, |u| u.input_tokens()),
                    usage.map_or(0, |u| u.output_tokens())
                );
            }
            Err(e) => {
                let code = e.code().unwrap_or("error").to_owned();
                let text = e.message().map(str::to_owned).unwrap_or_else(|| {
                    aws_sdk_bedrockruntime::error::DisplayErrorContext(&e).to_string()
                });
                refused += 1;
                println!("call {n}: refused ({code}): {text}");
                if code != "ThrottlingException" {
                    break;
                }
            }
        }
    }
    println!("{model}: {answered} calls answered, {refused} refused");
    Ok(())
}
