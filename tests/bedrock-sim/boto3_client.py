"""boto3 against the Bedrock runtime simulator: the four operations, streaming, token-count
headers, and the throttling error as boto3's own typed exception. Exits 1 on the first failure.

Usage: python boto3_client.py http://127.0.0.1:18080
"""

import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    checks += 1


client = boto3.client(
    "bedrock-runtime", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing",
    config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
)

out = client.converse(modelId=f"us.{HAIKU}", messages=[{"role": "user", "content": [{"text": "hi [sim:output_tokens=6]"}]}],
                      inferenceConfig={"maxTokens": 50})
check(out["usage"]["outputTokens"] == 6, f"converse usage {out['usage']}")

stream = client.converse_stream(modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "[sim:output_tokens=3]"}]}])
events = list(stream["stream"])
check(list(events[-1]) == ["metadata"], f"last ConverseStream event {events[-1]}")
check(events[-1]["metadata"]["usage"]["outputTokens"] == 3, "metadata usage")

body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, "messages": [{"role": "user", "content": "[sim:output_tokens=4]"}]}
out = client.invoke_model(modelId=f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", body=json.dumps(body))
headers = out["ResponseMetadata"]["HTTPHeaders"]
check(headers["x-amzn-bedrock-output-token-count"] == "4", f"token headers {headers}")
check(json.loads(out["body"].read())["usage"]["output_tokens"] == 4, "native body usage")

out = client.invoke_model_with_response_stream(modelId="mistral.mistral-large-2407-v1:0",
                                               body=json.dumps({"prompt": "[sim:output_tokens=2]", "max_tokens": 10}))
chunks = [json.loads(e["chunk"]["bytes"]) for e in out["body"] if "chunk" in e]
check(chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 2, f"last chunk {chunks[-1]}")
check(all("amazon-bedrock-invocationMetrics" not in c for c in chunks[:-1]), "metrics only in the last chunk")

try:
    client.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "[sim:error=ThrottlingException]"}]}])
    check(False, "throttle raised")
except client.exceptions.ThrottlingException as error:
    check(error.response["ResponseMetadata"]["HTTPStatusCode"] == 429, "throttle status")

# The control endpoints over HTTP: queue a throttle, see boto3 get it, see it in the request log.
endpoint = sys.argv[1]
queue = urllib.request.Request(f"{endpoint}/_sim/config", data=json.dumps({"errors": ["ThrottlingException"]}).encode(),
                               headers={"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(queue).read()
try:
    client.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "queued"}]}])
    check(False, "queued throttle raised")
except client.exceptions.ThrottlingException:
    checks += 1
urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_sim/config", data=b"{}", method="POST")).read()
served = json.loads(urllib.request.urlopen(f"{endpoint}/_sim/requests").read())
check(served[-1]["status"] == 429 and served[-1]["error"] == "ThrottlingException", f"request log {served[-1]}")
check(served[-1]["signedFor"] == "bedrock/us-east-1", "boto3 signs for bedrock")

# An unsigned request is refused as Bedrock refuses it.
unsigned = urllib.request.Request(f"{endpoint}/model/{HAIKU}/converse", data=b"{}", method="POST")
try:
    urllib.request.urlopen(unsigned)
    check(False, "unsigned request refused")
except urllib.error.HTTPError as error:
    check(error.code == 403 and error.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException"),
          f"unsigned: {error.code} {error.headers}")

print(f"boto3: {checks} checks passed")
