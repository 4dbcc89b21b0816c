"""boto3 through the aigov gateway, from a pod's address: the calls a workload makes, and
the gateway's refusals read as boto3's own typed exceptions. Exits 1 on the first failure.

Usage: python gateway_boto3.py GATEWAY_URL SOURCE_IP calls
       python gateway_boto3.py GATEWAY_URL SOURCE_IP expect-throttle
       python gateway_boto3.py GATEWAY_URL SOURCE_IP expect-denied TEXT
       python gateway_boto3.py GATEWAY_URL SOURCE_IP tagged
       python gateway_boto3.py GATEWAY_URL SOURCE_IP expect-invalid
"""

import json
import sys

import boto3
import botocore.httpsession
from botocore.config import Config

gateway, source, mode = sys.argv[1], sys.argv[2], sys.argv[3]

# The pod's address: connections leave from SOURCE_IP, as they would from the pod.
_pool_kwargs = botocore.httpsession.URLLib3Session._get_pool_manager_kwargs


def _from_source(self, **extra):
    kwargs = _pool_kwargs(self, **extra)
    kwargs["source_address"] = (source, 0)
    return kwargs


botocore.httpsession.URLLib3Session._get_pool_manager_kwargs = _from_source

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
client = boto3.client(
    "bedrock-runtime", endpoint_url=gateway, region_name="us-east-1",
    aws_access_key_id="workload", aws_secret_access_key="workload-secret",
    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
)


def fail(what):
    print(f"FAILED: {what}")
    sys.exit(1)


def message(text):
    return [{"role": "user", "content": [{"text": text}]}]


if mode == "calls":
    ids = []
    out = client.converse(modelId=HAIKU, messages=message("boto3 [sim:output_tokens=20]"), inferenceConfig={"maxTokens": 40})
    if out["usage"]["outputTokens"] != 20:
        fail(f"converse usage {out['usage']}")
    ids.append(out["ResponseMetadata"]["RequestId"])
    out = client.converse_stream(modelId=HAIKU, messages=message("[sim:output_tokens=7]"), inferenceConfig={"maxTokens": 40})
    events = list(out["stream"])
    if list(events[-1]) != ["metadata"]:
        fail(f"last ConverseStream event {events[-1]}")
    ids.append(out["ResponseMetadata"]["RequestId"])
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,
                       "messages": [{"role": "user", "content": "[sim:output_tokens=9]"}]})
    out = client.invoke_model(modelId=HAIKU, body=body, contentType="application/json")
    if out["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-bedrock-output-token-count") != "9":
        fail(f"token headers {out['ResponseMetadata']['HTTPHeaders']}")
    json.loads(out["body"].read())
    ids.append(out["ResponseMetadata"]["RequestId"])
    out = client.invoke_model_with_response_stream(modelId=HAIKU, body=body, contentType="application/json")
    chunks = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    if "amazon-bedrock-invocationMetrics" not in chunks[-1]:
        fail(f"last chunk {chunks[-1]}")
    ids.append(out["ResponseMetadata"]["RequestId"])
    print(json.dumps(ids))
elif mode == "expect-throttle":
    try:
        for _ in range(3):
            client.converse(modelId=HAIKU, messages=message("again"), inferenceConfig={"maxTokens": 10})
        fail("no ThrottlingException in three calls")
    except client.exceptions.ThrottlingException as e:
        print("throttled:", e.response["Error"]["Message"])
elif mode == "expect-denied":
    try:
        client.converse(modelId=HAIKU, messages=message("more"), inferenceConfig={"maxTokens": 10})
        fail("the call was admitted")
    except client.exceptions.AccessDeniedException as e:
        text = e.response["Error"]["Message"]
        if sys.argv[4] not in text:
            fail(f"{sys.argv[4]!r} not in {text!r}")
        print("denied:", text)
elif mode == "tagged":
    # Request metadata as boto3 sends it: Converse's requestMetadata in the body, InvokeModel's
    # as the X-Amzn-Bedrock-Request-Metadata header (a JSON string).
    ids = []
    out = client.converse(modelId=HAIKU, messages=message("[sim:output_tokens=11]"), inferenceConfig={"maxTokens": 20},
                          requestMetadata={"feature": "boto3", "user": "py"})
    ids.append(out["ResponseMetadata"]["RequestId"])
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30,
                       "messages": [{"role": "user", "content": "[sim:output_tokens=13]"}]})
    out = client.invoke_model(modelId=HAIKU, body=body, contentType="application/json",
                              requestMetadata=json.dumps({"feature": "boto3-invoke"}))
    json.loads(out["body"].read())
    ids.append(out["ResponseMetadata"]["RequestId"])
    print(json.dumps(ids))
elif mode == "expect-invalid":
    pairs = {f"k{i}": "v" for i in range(17)}
    try:
        client.converse(modelId=HAIKU, messages=message("too many"), inferenceConfig={"maxTokens": 10},
                        requestMetadata=pairs)
        fail("17 pairs were accepted")
    except client.exceptions.ValidationException as e:
        print("invalid:", e.response["Error"]["Message"])
else:
    fail(f"unknown mode {mode}")
