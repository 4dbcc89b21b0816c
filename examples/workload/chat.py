"""A sample workload: calls Bedrock with boto3 exactly as it would without aigov. The only
change a team makes is the endpoint, set outside the code:

    AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://aigov-gateway.aigov-system.svc:8080

Usage: python chat.py MODEL_ID CALLS [MAX_TOKENS]

Each call's outcome is printed; a refusal from a budget is printed with its message (boto3
raises it as ThrottlingException or AccessDeniedException, like any Bedrock error).

For the local demo only, AIGOV_DEMO_SOURCE_IP makes connections leave from the address the
demo's pod object carries (in a cluster the pod's own IP does this by itself).
"""

import os
import sys

import boto3
import botocore.httpsession
from botocore.config import Config

source = os.environ.get("AIGOV_DEMO_SOURCE_IP")
if source:
    _kwargs = botocore.httpsession.URLLib3Session._get_pool_manager_kwargs

    def _from_source(self, **extra):
        kwargs = _kwargs(self, **extra)
        kwargs["source_address"] = (source, 0)
        return kwargs

    botocore.httpsession.URLLib3Session._get_pool_manager_kwargs = _from_source

model, calls = sys.argv[1], int(sys.argv[2])
max_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 512
client = boto3.client("bedrock-runtime", config=Config(retries={"total_max_attempts": 3, "mode": "standard"}))

ok = refused = 0
for n in range(calls):
    prompt = os.environ.get("PROMPT", "Summarise our incident report in three bullet points.")
    try:
        out = client.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": f"{prompt} (#{n})"}]}],
            inferenceConfig={"maxTokens": max_tokens},
        )
        ok += 1
        usage = out["usage"]
        downgraded = out["ResponseMetadata"]["HTTPHeaders"].get("x-aigov-downgraded-to")
        note = f" (downgraded to {downgraded})" if downgraded else ""
        print(f"call {n}: {usage['inputTokens']} in / {usage['outputTokens']} out{note}")
    except (client.exceptions.ThrottlingException, client.exceptions.AccessDeniedException) as e:
        refused += 1
        print(f"call {n}: refused ({e.response['Error']['Code']}): {e.response['Error']['Message']}")
        if e.response["Error"]["Code"] == "AccessDeniedException":
            break
print(f"{ok} calls answered, {refused} refused")
