// Conformance of fake-ollama with the official `ollama` JavaScript client (pinned in
// package-lock.json). Run by tests/integration/fake_ollama_npm_test.cpp with OLLAMA_HOST set
// to a running `fake-ollama serve`. Exits non-zero with a message on the first mismatch.
import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { Ollama } from 'ollama';

// With OLLAMA_SOCKET set, the client talks HTTP over that Unix socket (oasisd's compatible
// surface) through the client's documented `fetch` option; the client itself is unchanged.
function unixSocketFetch(socketPath) {
  return (input, init = {}) =>
    new Promise((resolve, reject) => {
      const url = new URL(typeof input === 'string' ? input : input.url);
      const headers = Object.fromEntries(new Headers(init.headers || {}).entries());
      const method = init.method || 'GET';
      const req = http.request({ socketPath, method, path: url.pathname + url.search, headers }, (res) => {
        const hs = new Headers();
        for (const [k, v] of Object.entries(res.headers)) hs.set(k, Array.isArray(v) ? v.join(', ') : v);
        const body = method === 'HEAD' || res.statusCode === 204 ? null : Readable.toWeb(res);
        resolve(new Response(body, { status: res.statusCode, headers: hs }));
      });
      req.on('error', reject);
      if (init.signal) init.signal.addEventListener('abort', () => req.destroy(new Error('aborted')));
      if (init.body) req.write(init.body);
      req.end();
    });
}

const socketPath = process.env.OLLAMA_SOCKET;
const host = socketPath ? 'http://localhost' : process.env.OLLAMA_HOST;
if (!host) {
  console.error('OLLAMA_HOST (or OLLAMA_SOCKET) is not set');
  process.exit(2);
}
const ollama = socketPath ? new Ollama({ host, fetch: unixSocketFetch(socketPath) }) : new Ollama({ host });
const model = process.env.FAKE_OLLAMA_MODEL || 'tiny';

const steps = [];
async function step(name, fn) {
  try {
    await fn();
    steps.push(name);
    console.log(`ok   ${name}`);
  } catch (err) {
    console.error(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  }
}

function isIso(s) {
  return typeof s === 'string' && !Number.isNaN(Date.parse(s));
}

function checkFinal(r) {
  assert.equal(r.done, true);
  assert.ok(['stop', 'length'].includes(r.done_reason), `done_reason ${r.done_reason}`);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']) {
    assert.ok(Number.isInteger(r[k]), `${k} is an integer: ${r[k]}`);
  }
  // nanoseconds: 16 tokens at 200 tokens/s is ~8e7 ns
  assert.ok(r.eval_duration > 1e6, `eval_duration in ns: ${r.eval_duration}`);
}

await step('version', async () => {
  const v = await ollama.version();
  assert.equal(typeof v.version, 'string');
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

await step('list', async () => {
  const l = await ollama.list();
  assert.ok(Array.isArray(l.models));
  const names = l.models.map((m) => m.name);
  assert.ok(names.includes('tiny:latest'), names.join(','));
  for (const m of l.models) {
    assert.equal(m.model, m.name);
    assert.match(m.digest, /^[0-9a-f]{64}$/);
    assert.ok(isIso(m.modified_at));
    assert.equal(typeof m.details.family, 'string');
  }
});

await step('show', async () => {
  const s = await ollama.show({ model });
  assert.equal(typeof s.modelfile, 'string');
  assert.equal(typeof s.template, 'string');
  assert.equal(typeof s.details.quantization_level, 'string');
  assert.ok(s.model_info['general.architecture']);
  assert.ok(Array.isArray(s.capabilities));
});

await step('show unknown model -> ResponseError 404', async () => {
  await assert.rejects(ollama.show({ model: 'no-such-model' }), (err) => {
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 404);
    assert.match(err.error, /not found/);
    return true;
  });
});

await step('ps (empty)', async () => {
  const p = await ollama.ps();
  assert.deepEqual(p.models, []);
});

await step('generate, non-streaming', async () => {
  const r = await ollama.generate({ model, prompt: 'Why is the sky blue?', stream: false });
  assert.equal(typeof r.response, 'string');
  assert.ok(r.response.length > 0);
  assert.ok(isIso(r.created_at));
  assert.ok(Array.isArray(r.context));
  checkFinal(r);
});

await step('ps (loaded)', async () => {
  const p = await ollama.ps();
  assert.equal(p.models.length, 1);
  const m = p.models[0];
  assert.equal(m.name, 'tiny:latest');
  assert.match(m.digest, /^[0-9a-f]{64}$/);
  assert.ok(isIso(m.expires_at));
  assert.ok(Date.parse(m.expires_at) > Date.now());
  assert.equal(m.size_vram, m.size);
});

await step('generate, streaming', async () => {
  const stream = await ollama.generate({ model, prompt: 'Tell me a story', stream: true });
  let text = '';
  let last;
  let parts = 0;
  for await (const part of stream) {
    if (!part.done) {
      text += part.response;
      parts++;
    }
    last = part;
  }
  assert.ok(parts > 1, `parts=${parts}`);
  assert.ok(text.length > 0);
  checkFinal(last);
});

await step('chat, non-streaming', async () => {
  const r = await ollama.chat({ model, messages: [{ role: 'user', content: 'hello' }], stream: false });
  assert.equal(r.message.role, 'assistant');
  assert.ok(r.message.content.length > 0);
  checkFinal(r);
});

await step('chat, streaming', async () => {
  const stream = await ollama.chat({ model, messages: [{ role: 'user', content: 'hello' }], stream: true });
  let text = '';
  let last;
  for await (const part of stream) {
    text += part.message.content;
    last = part;
  }
  assert.ok(text.length > 0);
  checkFinal(last);
});

await step('generate with an invalid keep_alive -> ResponseError 400', async () => {
  await assert.rejects(ollama.generate({ model, prompt: 'x', keep_alive: '300', stream: false }), (err) => {
    assert.equal(err.status_code, 400);
    assert.match(err.error, /missing unit/);
    return true;
  });
});

await step('unload (keep_alive 0) and ps', async () => {
  const r = await ollama.generate({ model, prompt: '', keep_alive: 0, stream: false });
  assert.equal(r.done_reason, 'unload');
  for (let i = 0; i < 200; i++) {
    const p = await ollama.ps();
    if (p.models.length === 0) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  assert.fail('model still in ps after unload');
});

console.log(`conformance: ${steps.length} steps passed against ${host}`);
