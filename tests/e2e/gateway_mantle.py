"""The real OpenAI and Anthropic Python SDKs (and boto3) through the aigov gateway, from a
pod's address, each pointed at the gateway by its usual setting: the OpenAI SDK's base URL
(GATEWAY/v1), the Anthropic SDK's Bedrock Mantle client's base URL (GATEWAY/anthropic), boto3's
endpoint URL. Prints the request IDs Bedrock answered, one JSON list on the last line. Exits 1
on the first failure.

Usage: python gateway_mantle.py GATEWAY_URL SOURCE_IP calls
       python gateway_mantle.py GATEWAY_URL SOURCE_IP expect-denied TEXT
       python gateway_mantle.py GATEWAY_URL SOURCE_IP runtime
"""

import json
import sys
import time

import anthropic
import httpx2
import openai
from anthropic.lib.bedrock import AnthropicBedrockMantle

gateway, source, mode = sys.argv[1], sys.argv[2], sys.argv[3]
GPT = "openai.gpt-oss-120b"
CLAUDE = "anthropic.claude-haiku-4-5"


def fail(what):
    print(f"FAILED: {what}")
    sys.exit(1)


def http_client():
    # The pod's address: connections leave from SOURCE_IP.
    return httpx2.Client(transport=httpx2.HTTPTransport(local_address=source))


oai = openai.OpenAI(base_url=f"{gateway}/v1", api_key="workload-bedrock-api-key",
                    http_client=http_client(), max_retries=0)
claude = AnthropicBedrockMantle(base_url=f"{gateway}/anthropic", api_key="workload-bedrock-api-key",
                                aws_region="us-east-1", http_client=http_client(), max_retries=0)


def calls():
    ids = []
    out = oai.chat.completions.create(model=GPT, max_completion_tokens=50,
                                      messages=[{"role": "user", "content": "chat [sim:output_tokens=11]"}])
    if out.usage.completion_tokens != 11:
        fail(f"chat usage {out.usage}")
    ids.append(out._request_id)

    # A stream that did not ask for usage: the caller must not see any.
    stream = oai.chat.completions.create(model=GPT, max_completion_tokens=50, stream=True,
                                         messages=[{"role": "user", "content": "[sim:output_tokens=6]"}])
    chunks = list(stream)
    if any(c.usage is not None for c in chunks) or any(not c.choices for c in chunks):
        fail("the caller saw a usage chunk it did not ask for")
    if "".join(c.choices[0].delta.content or "" for c in chunks) != "w0 w1 w2 w3 w4 w5 ":
        fail("stream content")
    ids.append(chunks[0].id.removeprefix("chatcmpl-"))

    # A stream that asked for usage gets it.
    stream = oai.chat.completions.create(model=GPT, max_completion_tokens=50, stream=True,
                                         stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "[sim:output_tokens=4]"}])
    chunks = list(stream)
    if chunks[-1].usage is None or chunks[-1].usage.completion_tokens != 4:
        fail(f"asked-for usage chunk missing: {chunks[-1]}")
    ids.append(chunks[0].id.removeprefix("chatcmpl-"))

    out = oai.responses.create(model=GPT, input="responses [sim:output_tokens=9]", max_output_tokens=40)
    if out.usage.output_tokens != 9:
        fail(f"responses usage {out.usage}")
    ids.append(out._request_id)

    with oai.responses.stream(model=GPT, input="[sim:output_tokens=5]", max_output_tokens=40) as s:
        final = s.get_final_response()
    if final.usage.output_tokens != 5:
        fail(f"responses stream usage {final.usage}")
    ids.append(final.id)

    queued = oai.responses.create(model=GPT, input="background [sim:output_tokens=7] [sim:latency_ms=400]",
                                  max_output_tokens=40, background=True)
    if queued.status != "queued":
        fail(f"background status {queued.status}")
    ids.append(queued._request_id)
    for _ in range(50):
        got = oai.responses.retrieve(queued.id)
        if got.status == "completed":
            break
        time.sleep(0.1)
    if got.status != "completed" or got.usage.output_tokens != 7:
        fail(f"background response {got.status} {got.usage}")

    msg = claude.messages.create(model=CLAUDE, max_tokens=64,
                                 messages=[{"role": "user", "content": "messages [sim:output_tokens=8]"}])
    if msg.usage.output_tokens != 8:
        fail(f"messages usage {msg.usage}")
    ids.append(msg._request_id)

    with claude.messages.stream(model=CLAUDE, max_tokens=64, system=[{"type": "text", "text": f"{time.time()} " + "x" * 4096,
                                "cache_control": {"type": "ephemeral"}}],
                                messages=[{"role": "user", "content": "[sim:output_tokens=3]"}]) as s:
        final = s.get_final_message()
    if final.usage.output_tokens != 3 or not final.usage.cache_creation_input_tokens:
        fail(f"messages stream usage {final.usage}")
    ids.append(final.id.removeprefix("msg_"))

    count = claude.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "free"}])
    if count.input_tokens < 1:
        fail(f"count_tokens {count}")
    print(json.dumps(ids))


def expect_denied(text):
    try:
        oai.chat.completions.create(model=GPT, max_completion_tokens=20,
                                    messages=[{"role": "user", "content": "denied"}])
        fail("OpenAI call was not refused")
    except openai.PermissionDeniedError as e:
        if text not in str(e) or e.code != "budget_exhausted":
            fail(f"OpenAI refusal {e}")
        print(f"openai: {e}")
    try:
        claude.messages.create(model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "denied"}])
        fail("Anthropic call was not refused")
    except anthropic.PermissionDeniedError as e:
        if text not in str(e) or e.body["error"]["type"] != "permission_error":
            fail(f"Anthropic refusal {e}")
        print(f"anthropic: {e}")


def runtime():
    import boto3
    import botocore.httpsession
    from botocore.config import Config

    pool_kwargs = botocore.httpsession.URLLib3Session._get_pool_manager_kwargs

    def from_source(self, **extra):
        kwargs = pool_kwargs(self, **extra)
        kwargs["source_address"] = (source, 0)
        return kwargs

    botocore.httpsession.URLLib3Session._get_pool_manager_kwargs = from_source
    rt = boto3.client("bedrock-runtime", endpoint_url=gateway, region_name="us-east-1",
                      aws_access_key_id="workload", aws_secret_access_key="workload-secret",
                      config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    ids = []
    out = rt.count_tokens(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                          input={"converse": {"messages": [{"role": "user", "content": [{"text": "count me"}]}]}})
    if out["inputTokens"] < 1:
        fail(f"count_tokens {out}")
    out = rt.apply_guardrail(guardrailIdentifier="gr-team", guardrailVersion="1", source="INPUT",
                             content=[{"text": {"text": "y" * 2500}}])
    if out["usage"]["contentPolicyUnits"] != 3:
        fail(f"apply_guardrail usage {out['usage']}")
    ids.append(out["ResponseMetadata"]["RequestId"])
    out = rt.start_async_invoke(modelId="amazon.nova-reel-v1:1",
                                modelInput={"taskType": "MULTI_SHOT_AUTOMATED",
                                            "multiShotAutomatedParams": {"text": "a cat [sim:latency_ms=300]"},
                                            "videoGenerationConfig": {"durationSeconds": 12, "fps": 24,
                                                                      "dimension": "1280x720"}},
                                outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/out"}})
    arn = out["invocationArn"]
    ids.append(out["ResponseMetadata"]["RequestId"])
    for _ in range(50):
        job = rt.get_async_invoke(invocationArn=arn)
        if job["status"] != "InProgress":
            break
        time.sleep(0.1)
    if job["status"] != "Completed":
        fail(f"async job {job['status']}")
    listed = rt.list_async_invokes()
    if not any(s["invocationArn"] == arn for s in listed["asyncInvokeSummaries"]):
        fail("list_async_invokes")
    # A guardrail on Converse is billed too; the trace the gateway asks for is not shown.
    guarded = []
    config = {"guardrailIdentifier": "gr-team", "guardrailVersion": "1"}
    out = rt.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", guardrailConfig=config,
                      messages=[{"role": "user", "content": [{"text": "z" * 1800 + " [sim:output_tokens=30]"}]}],
                      inferenceConfig={"maxTokens": 100})
    if "trace" in out:
        fail(f"the caller saw a trace it did not ask for: {out['trace']}")
    guarded.append(out["ResponseMetadata"]["RequestId"])
    out = rt.converse_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0", guardrailConfig={**config, "trace": "enabled"},
                             messages=[{"role": "user", "content": [{"text": "[sim:output_tokens=12]"}]}],
                             inferenceConfig={"maxTokens": 100})
    events = list(out["stream"])
    if "trace" not in events[-1]["metadata"]:
        fail("the trace the caller asked for is missing")
    guarded.append(out["ResponseMetadata"]["RequestId"])
    # On InvokeModel the guardrail is named in headers; billed the same way.
    native = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
              "messages": [{"role": "user", "content": "w" * 1200 + " [sim:output_tokens=25]"}]}
    out = rt.invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(native),
                          guardrailIdentifier="gr-team", guardrailVersion="1")
    answer = json.loads(out["body"].read())
    if "amazon-bedrock-trace" in answer or answer.get("amazon-bedrock-guardrailAction") != "NONE":
        fail(f"invoke_model with a guardrail answered {sorted(answer)}")
    guarded.append(out["ResponseMetadata"]["RequestId"])
    out = rt.invoke_model_with_response_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                                               body=json.dumps(native), guardrailIdentifier="gr-team",
                                               guardrailVersion="1", trace="ENABLED")
    chunks = [json.loads(e["chunk"]["bytes"]) for e in out["body"] if "chunk" in e]
    if "amazon-bedrock-trace" not in chunks[-1]:
        fail("the stream's trace the caller asked for is missing")
    guarded.append(out["ResponseMetadata"]["RequestId"])
    # InvokeGuardrailChecks: text units per check requested.
    out = rt.invoke_guardrail_checks(messages=[{"role": "user", "content": [{"text": "v" * 2100}]}],
                                     checks={"contentFilter": {"categories": [{"category": "VIOLENCE"}]},
                                             "sensitiveInformation": {"entities": [{"type": "EMAIL"}]}})
    if out["usage"]["contentFilter"]["textUnits"] != 4 or "promptAttack" in out["usage"]:
        fail(f"invoke_guardrail_checks usage {out['usage']}")
    checks = [out["ResponseMetadata"]["RequestId"]]
    print(json.dumps({"units": ids, "guarded": guarded, "checks": checks}))


if mode == "calls":
    calls()
elif mode == "expect-denied":
    expect_denied(sys.argv[4])
elif mode == "runtime":
    runtime()
else:
    fail(f"unknown mode {mode}")
