#!/usr/bin/env node
// node `ws` (a client we did not write) against a running `wsl echo`.
//
// Usage: NODE_PATH=.deps/node/node_modules node test_node_ws.js ws://127.0.0.1:PORT/
// ctest runs it through `harness.py with-server`, which starts and stops the server.
// Each test has its own deadline; the exit status is 0 only if every test passed.
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
if (!url) {
  console.error('usage: test_node_ws.js ws://127.0.0.1:PORT/');
  process.exit(64);
}
const SCALE = Number(process.env.WSL_TIME_SCALE || 1);
const TIMEOUT_MS = 10000 * SCALE;
const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

// ---- a tiny runner ----------------------------------------------------------------------------

const tests = [];
function test(name, body, timeoutMs = 3 * TIMEOUT_MS) {
  tests.push({ name, body, timeoutMs });
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ---- client helpers ---------------------------------------------------------------------------

// A connected client whose incoming messages, pongs and close are queued as promises.
class Client {
  static async open() {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0, handshakeTimeout: TIMEOUT_MS });
    const client = new Client(ws);
    await withDeadline(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), TIMEOUT_MS, 'open');
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.queued = { message: [], pong: [] };   // arrived, nobody waiting yet
    this.waiters = { message: [], pong: [] };  // waiting, nothing arrived yet
    ws.on('message', (data, isBinary) => this.push('message', { data, isBinary }));
    ws.on('pong', (data) => this.push('pong', data));
    ws.on('error', () => {});  // reported through 'close' (code 1006) and the failing test
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  push(kind, value) {
    const waiter = this.waiters[kind].shift();
    if (waiter) waiter(value);
    else this.queued[kind].push(value);
  }

  // The next message ({data, isBinary}) or pong payload, within TIMEOUT_MS.
  next(kind) {
    if (this.queued[kind].length) return Promise.resolve(this.queued[kind].shift());
    const arrived = new Promise((resolve) => this.waiters[kind].push(resolve));
    const closed = this.closed.then(({ code, reason }) => {
      throw new Error(`closed (${code} ${reason}) while waiting for a ${kind}`);
    });
    return withDeadline(Promise.race([arrived, closed]), TIMEOUT_MS, `a ${kind}`);
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => this.ws.send(data, options, (err) => (err ? reject(err) : resolve())));
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return withDeadline(this.closed, TIMEOUT_MS, 'the close handshake');
  }
}

function textOfSize(n) {
  // 1- to 4-byte characters filling exactly n bytes.
  const block = Buffer.from('aZ 9~\u00e9\u00df\u0416\u20ac\u4e2d\ufffd\u{1d11e}\u{1f600}'.repeat(200));
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i += block.length) block.copy(bytes, i);
  // A streaming decoder holds back the character cut at the end; ASCII fills its place.
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true });
  return text + 'x'.repeat(n - Buffer.byteLength(text));
}

async function expectEcho(client, data, isBinary, what) {
  const echo = await client.next('message');
  assert(echo.isBinary === isBinary, `${what}: came back as ${echo.isBinary ? 'binary' : 'text'}`);
  const expected = Buffer.isBuffer(data) ? data : Buffer.from(data);
  assert(echo.data.length === expected.length, `${what}: ${echo.data.length} bytes back, sent ${expected.length}`);
  assert(echo.data.equals(expected), `${what}: content differs`);
}

// ---- the tests --------------------------------------------------------------------------------

test('text messages of every length encoding up to 16 MiB', async () => {
  const c = await Client.open();
  for (const n of SIZES) {
    const text = textOfSize(n);
    assert(Buffer.byteLength(text) === n, `textOfSize(${n}) is ${Buffer.byteLength(text)} bytes`);
    await c.send(text);
    await expectEcho(c, text, false, `${n}-byte text`);
  }
  await c.close(1000);
});

test('binary messages of every length encoding up to 16 MiB', async () => {
  const c = await Client.open();
  for (const n of SIZES) {
    const data = crypto.randomBytes(n);
    await c.send(data);
    await expectEcho(c, data, true, `${n}-byte binary`);
  }
  await c.close(1000);
});

test('fragmented binary message', async () => {
  const c = await Client.open();
  const parts = [0, 1, 125, 126, 65536, 0, 300000, 3].map((n) => crypto.randomBytes(n));
  for (let i = 0; i < parts.length; i++) await c.send(parts[i], { binary: true, fin: i === parts.length - 1 });
  await expectEcho(c, Buffer.concat(parts), true, 'fragmented binary');
  await c.close(1000);
});

test('fragmented text split inside multi-byte characters', async () => {
  const c = await Client.open();
  const whole = Buffer.from('\u20ac uro \u{1f600} and \u00e9t\u00e9');
  const cuts = [1, 2, 7, 8, 9, whole.length - 1];  // 1 and 2 split the 3-byte euro sign, 7-9 the emoji
  let start = 0;
  for (const end of [...cuts, whole.length]) {
    await c.send(whole.subarray(start, end), { binary: false, fin: end === whole.length });
    start = end;
  }
  await expectEcho(c, whole, false, 'fragmented text');
  await c.close(1000);
});

test('ping with payload is answered by a pong with the same payload', async () => {
  const c = await Client.open();
  for (const payload of [Buffer.alloc(0), Buffer.from('x'), Buffer.from('latency probe'), crypto.randomBytes(125)]) {
    c.ws.ping(payload);
    const pong = await c.next('pong');
    assert(pong.equals(payload), `pong payload ${pong.toString('hex')} for ping ${payload.toString('hex')}`);
  }
  await c.close(1000);
});

test('ping between the fragments of a message', async () => {
  const c = await Client.open();
  await c.send(Buffer.from('first half '), { binary: true, fin: false });
  c.ws.ping('in the middle');
  assert((await c.next('pong')).toString() === 'in the middle', 'wrong pong');
  await c.send(Buffer.from('second half'), { binary: true, fin: true });
  await expectEcho(c, Buffer.from('first half second half'), true, 'message around a ping');
  await c.close(1000);
});

for (const [code, reason] of [[1000, ''], [3000, 'registered by a library'], [4999, 'private use \u2713']]) {
  test(`close ${code} is echoed with its reason`, async () => {
    const c = await Client.open();
    const closed = await c.close(code, reason);
    assert(closed.code === code && closed.reason === reason,
           `the server answered close ${code} '${reason}' with ${closed.code} '${closed.reason}'`);
  });
}

test('20 concurrent clients with pipelined messages', async () => {
  const clients = await Promise.all(Array.from({ length: 20 }, () => Client.open()));
  await Promise.all(clients.map(async (c, n) => {
    const sent = Array.from({ length: 30 },
      (_, i) => (i % 2 ? crypto.randomBytes((n * 131 + i * 977) % 20000) : `client ${n} message ${i}`));
    for (const m of sent) await c.send(m);
    for (const [i, m] of sent.entries()) {
      await expectEcho(c, m, typeof m !== 'string', `client ${n} message ${i}`);
    }
    await c.close(1000);
  }));
});

// ---- run --------------------------------------------------------------------------------------

(async () => {
  let failed = 0;
  for (const t of tests) {
    const started = Date.now();
    try {
      await withDeadline(t.body(), t.timeoutMs, t.name);
      console.log(`ok    ${t.name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed++;
      console.log(`FAIL  ${t.name} (${Date.now() - started} ms): ${err.message}`);
    }
  }
  console.log(`${tests.length - failed}/${tests.length} passed`);
  process.exit(failed ? 1 : 0);
})();
