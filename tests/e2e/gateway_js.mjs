// The AWS SDK for JavaScript v3 through the aigov gateway, unchanged but for its endpoint:
// a Converse and a ConverseStream (read to its end) over the client's default request
// handler, NodeHttp2Handler, which speaks h2c (HTTP/2 with prior knowledge) to an http://
// endpoint. Prints one JSON line: the request IDs, the handler's protocol, and how many
// HTTP/2 sessions node opened. Exits 1 on the first failure.
//
// Usage: AIGOV_JS_SDK=DIR node gateway_js.mjs GATEWAY_URL
//   DIR is where tests/env/tools.sh installed @aws-sdk/client-bedrock-runtime ($JS_SDK_DIR).

import { createRequire } from "node:module";
import path from "node:path";

const [gateway] = process.argv.slice(2);
const sdkDir = process.env.AIGOV_JS_SDK;
if (!sdkDir || !gateway) throw new Error("usage: AIGOV_JS_SDK=DIR node gateway_js.mjs GATEWAY_URL");
const require = createRequire(path.join(sdkDir, "package.json"));

// Counts the HTTP/2 sessions the SDK opens (it calls node's http2.connect); observed only,
// the session itself is node's own.
const http2 = require("node:http2");
const connect = http2.connect;
let h2Sessions = 0;
http2.connect = (...args) => {
  h2Sessions += 1;
  return connect.apply(http2, args);
};

const { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } = require(
  "@aws-sdk/client-bedrock-runtime",
);

const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";

function fail(what) {
  console.log(`FAILED: ${what}`);
  process.exit(1);
}

function message(text) {
  return [{ role: "user", content: [{ text }] }];
}

const client = new BedrockRuntimeClient({
  endpoint: gateway,
  region: "us-east-1",
  credentials: { accessKeyId: "workload", secretAccessKey: "workload-secret" },
  maxAttempts: 1,
});

const ids = [];
const out = await client.send(
  new ConverseCommand({
    modelId: HAIKU,
    messages: message("js [sim:output_tokens=20]"),
    inferenceConfig: { maxTokens: 40 },
  }),
);
if (out.usage?.outputTokens !== 20) fail(`converse usage ${JSON.stringify(out.usage)}`);
ids.push(out.$metadata.requestId);

const streamed = await client.send(
  new ConverseStreamCommand({
    modelId: HAIKU,
    messages: message("[sim:output_tokens=7]"),
    inferenceConfig: { maxTokens: 40 },
  }),
);
const events = [];
for await (const event of streamed.stream) events.push(event);
const last = events.at(-1) ?? {};
if (last.metadata?.usage?.outputTokens !== 7) fail(`last ConverseStream event ${JSON.stringify(last)}`);
ids.push(streamed.$metadata.requestId);

const handler = client.config.requestHandler;
console.log(
  JSON.stringify({
    ids,
    handler: handler.constructor.name,
    protocol: handler.metadata?.handlerProtocol ?? null,
    h2Sessions,
  }),
);
client.destroy();
