"""A workload calling Bedrock straight, around the gateway, as boto3 does: it assumes its team's
role through STS and calls Converse on the Bedrock endpoint itself. Prints the request IDs and
the session's ARN as JSON.

Usage: bypass_boto3.py STS_ENDPOINT BEDROCK_ENDPOINT ROLE_ARN MODEL CALLS
"""

import json
import sys

import boto3


def main() -> None:
    sts_endpoint, bedrock_endpoint, role_arn, model, calls = sys.argv[1:6]
    sts = boto3.client("sts", endpoint_url=sts_endpoint, region_name="us-east-1")
    assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName="laptop")
    creds = assumed["Credentials"]
    runtime = boto3.client(
        "bedrock-runtime",
        endpoint_url=bedrock_endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    ids = []
    for n in range(int(calls)):
        out = runtime.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": f"around the gateway {n} [sim:output_tokens=50]"}]}],
            inferenceConfig={"maxTokens": 100},
        )
        ids.append(out["ResponseMetadata"]["RequestId"])
    print(json.dumps({"ids": ids, "principal": assumed["AssumedRoleUser"]["Arn"]}))


if __name__ == "__main__":
    main()
