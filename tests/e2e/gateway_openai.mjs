// The real `openai` npm package through the aigov gateway, from a pod's address, pointed at it by
// its base URL (GATEWAY/v1): Chat Completions whole and streaming (without asking for usage:
// the caller must not see any), Responses, and the exhausted budget as the SDK's own
// PermissionDeniedError. Prints the request IDs Bedrock answered as one JSON list on the last
// line; exits 1 on the first failure.
//
// Usage: node gateway_openai.mjs SDK_DIR GATEWAY_URL SOURCE_IP calls|expect-denied [TEXT]
import http from 'node:http';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';

const [sdkDir, gateway, source, mode, text] = process.argv.slice(2);
const require = createRequire(`${sdkDir}/node_modules/`);
const OpenAI = require('openai').default ?? require('openai');

// The pod's address: every connection leaves from SOURCE_IP (node:http's localAddress).
async function fetchFrom(url, init = {}) {
  const body = init.body == null ? undefined : Buffer.from(await new Response(init.body).arrayBuffer());
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: init.method ?? 'GET', headers, localAddress: source }, (res) => {
      const responseHeaders = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        responseHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
      }
      resolve(new Response(Readable.toWeb(res), { status: res.statusCode, headers: responseHeaders }));
    });
    request.on('error', reject);
    init.signal?.addEventListener('abort', () => request.destroy(new Error('aborted')));
    if (body) request.write(body);
    request.end();
  });
}

function fail(what) {
  console.log(`FAILED: ${what}`);
  process.exit(1);
}

const client = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: 'workload-bedrock-api-key', fetch: fetchFrom, maxRetries: 0 });
const GPT = 'openai.gpt-oss-20b';

if (mode === 'calls') {
  const ids = [];
  const whole = await client.chat.completions.create({ model: GPT, max_completion_tokens: 40,
    messages: [{ role: 'user', content: 'js [sim:output_tokens=13]' }] }).withResponse();
  if (whole.data.usage.completion_tokens !== 13) fail(`chat usage ${JSON.stringify(whole.data.usage)}`);
  ids.push(whole.response.headers.get('x-request-id'));

  const stream = await client.chat.completions.create({ model: GPT, max_completion_tokens: 40, stream: true,
    messages: [{ role: 'user', content: '[sim:output_tokens=5]' }] });
  let content = '';
  let first;
  for await (const chunk of stream) {
    first ??= chunk;
    if (chunk.usage) fail('the caller saw a usage chunk it did not ask for');
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  if (content !== 'w0 w1 w2 w3 w4 ') fail(`stream content ${content}`);
  ids.push(first.id.replace(/^chatcmpl-/, ''));

  const response = await client.responses.create({ model: GPT, input: 'js responses [sim:output_tokens=6]', max_output_tokens: 30 });
  if (response.usage.output_tokens !== 6) fail(`responses usage ${JSON.stringify(response.usage)}`);
  ids.push(response.id);
  console.log(JSON.stringify(ids));
} else if (mode === 'expect-denied') {
  try {
    await client.chat.completions.create({ model: GPT, max_completion_tokens: 20, messages: [{ role: 'user', content: 'denied' }] });
    fail('not refused');
  } catch (e) {
    if (!(e instanceof OpenAI.PermissionDeniedError) || !e.message.includes(text) || e.code !== 'budget_exhausted') {
      fail(`refusal ${e}`);
    }
    console.log(`openai-js: ${e.message}`);
  }
} else {
  fail(`unknown mode ${mode}`);
}
