// A stalled reader over HTTP/2: the AWS SDK for JavaScript v3 (its default NodeHttp2Handler,
// h2c to an http:// endpoint) opens a 64,000-token ConverseStream through the gateway, reads
// three events, then reads nothing for WAIT_MS while the stream stays open (node stops
// consuming, so the stream's flow-control window shuts), then reads on to the end or the first
// error. Then it makes a Converse on the same client (the SDK gives an event stream a session
// of its own, so this goes on another). Prints one JSON line; exits 1 on an unexpected failure.
//
// Usage: AIGOV_JS_SDK=DIR node stalled_js.mjs GATEWAY_URL MODEL WAIT_MS

import { createRequire } from "node:module";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const [gateway, model, waitMs] = process.argv.slice(2);
const sdkDir = process.env.AIGOV_JS_SDK;
if (!sdkDir || !gateway || !model || !waitMs) {
  throw new Error("usage: AIGOV_JS_SDK=DIR node stalled_js.mjs GATEWAY_URL MODEL WAIT_MS");
}
const require = createRequire(path.join(sdkDir, "package.json"));

const { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } = require(
  "@aws-sdk/client-bedrock-runtime",
);

function fail(what) {
  console.log(`FAILED: ${what}`);
  process.exit(1);
}

const client = new BedrockRuntimeClient({
  endpoint: gateway,
  region: "us-east-1",
  credentials: { accessKeyId: "workload", secretAccessKey: "workload-secret" },
  maxAttempts: 1,
});

const streamed = await client.send(
  new ConverseStreamCommand({
    modelId: model,
    messages: [{ role: "user", content: [{ text: "a very long answer [sim:output_tokens=64000]" }] }],
    inferenceConfig: { maxTokens: 64000 },
  }),
);
const events = streamed.stream[Symbol.asyncIterator]();
for (let i = 0; i < 3; i++) {
  const next = await events.next();
  if (next.done) fail("the stream ended after a few events");
}

// Stalled: nothing read, the stream open.
await sleep(Number(waitMs));

let eventsAfter = 0;
let metadata = false;
let ended = "end";
let error = null;
try {
  for (;;) {
    const next = await events.next();
    if (next.done) break;
    eventsAfter += 1;
    if (next.value.metadata) metadata = true;
  }
} catch (e) {
  ended = "error";
  error = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}

const after = await client.send(
  new ConverseCommand({
    modelId: model,
    messages: [{ role: "user", content: [{ text: "after [sim:output_tokens=5]" }] }],
    inferenceConfig: { maxTokens: 20 },
  }),
);

console.log(
  JSON.stringify({
    streamId: streamed.$metadata.requestId,
    afterId: after.$metadata.requestId,
    eventsAfter,
    metadata,
    ended,
    error,
  }),
);
client.destroy();
