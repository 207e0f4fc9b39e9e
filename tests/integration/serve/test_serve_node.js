// `wsl serve` driven by node `ws` clients: --pipe broadcast and stdout, per-connection `cat`,
// exit statuses as close codes, --tcp to a node TCP server, 503 over --max-connections, 403 on a
// bad origin.
//   node test_serve_node.js     ($WSL_BIN: the wsl binary; NODE_PATH: where `ws` is)
'use strict';

const assert = require('assert');
const { spawn } = require('child_process');
const path = require('path');
const WebSocket = require('ws');

const WSL = process.env.WSL_BIN || path.join(__dirname, '..', '..', '..', 'build', 'release', 'cli', 'wsl');
const SCALE = Number(process.env.WSL_TIME_SCALE || 1);
const TIMEOUT = 10000 * SCALE;

function withTimeout(promise, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
  })]).finally(() => clearTimeout(timer));
}

// Starts `wsl serve ARGS` on a free port; resolves once it is listening.
function serve(args) {
  const proc = spawn(WSL, ['serve', '--host', '127.0.0.1', '--port', '0', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const server = { proc, stdout: '', stderr: '', exited: null };
  server.exit = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code === null ? signal : code)));
  proc.stdout.on('data', (d) => { server.stdout += d; });
  return withTimeout(new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      server.stderr += d;
      const m = /^listening on ws:\/\/127\.0\.0\.1:(\d+)\/$/m.exec(server.stderr);
      if (m && !server.url) {
        server.url = `ws://127.0.0.1:${m[1]}/`;
        resolve(server);
      }
    });
    proc.on('exit', () => reject(new Error(`wsl exited early: ${server.stderr}`)));
  }), 'listening line');
}

function open(url, options = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    ws.messages = [];
    ws.closed = new Promise((done) => ws.on('close', (code, reason) => done({ code, reason: reason.toString() })));
    ws.on('message', (data, binary) => ws.messages.push(binary ? data : data.toString()));
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  }), `open ${url}`);
}

function until(predicate, what) {
  return withTimeout(new Promise((resolve) => {
    const check = () => (predicate() ? resolve() : setTimeout(check, 5));
    check();
  }), what);
}

const tests = {
  async pipeBroadcastAndStdout() {
    const server = await serve(['--pipe']);
    const clients = await Promise.all([1, 2, 3].map(() => open(server.url)));
    clients.forEach((ws, i) => ws.send(`hello from ${i}`));
    await until(() => server.stdout.split('\n').length > 3, 'three hellos on stdout');
    assert.deepStrictEqual(server.stdout.split('\n').sort(), ['', 'hello from 0', 'hello from 1', 'hello from 2']);
    const lines = Array.from({ length: 1000 }, (_, i) => `record ${i} ${'z'.repeat(i % 100)}`);
    server.proc.stdin.end(lines.join('\n') + '\n');
    const closes = await withTimeout(Promise.all(clients.map((ws) => ws.closed)), 'closes');
    for (const ws of clients) assert.deepStrictEqual(ws.messages, lines);
    for (const c of closes) assert.strictEqual(c.code, 1000);
    assert.strictEqual(await withTimeout(server.exit, 'exit'), 0);
  },

  async perConnectionCat() {
    const server = await serve(['--', 'cat']);
    const clients = await Promise.all([1, 2, 3, 4].map(() => open(server.url)));
    clients.forEach((ws, i) => { for (let n = 0; n < 100; n++) ws.send(`c${i} m${n}`); });
    await until(() => clients.every((ws) => ws.messages.length === 100), 'echoes');
    clients.forEach((ws, i) => assert.deepStrictEqual(ws.messages, Array.from({ length: 100 }, (_, n) => `c${i} m${n}`)));
    clients.forEach((ws) => ws.close(1000));
    await withTimeout(Promise.all(clients.map((ws) => ws.closed)), 'closes');
    server.proc.kill('SIGINT');
    assert.strictEqual(await withTimeout(server.exit, 'exit'), 130);
  },

  async exitStatusesAsCloseCodes() {
    const server = await serve(['--', 'sh', '-c', 'read n; echo "exiting $n"; exit $n']);
    for (const n of [0, 5]) {
      const ws = await open(server.url);
      ws.send(String(n));
      const close = await withTimeout(ws.closed, 'close');
      assert.deepStrictEqual(ws.messages, [`exiting ${n}`]);
      assert.deepStrictEqual(close, n === 0 ? { code: 1000, reason: '' } : { code: 1011, reason: 'exit 5' });
    }
    server.proc.kill('SIGINT');
    await withTimeout(server.exit, 'exit');
  },

  // --tcp: node's own TCP server behind wsl; a Buffer and a string go as bytes, the reply comes
  // back binary, and the server behind closing closes the WebSocket with 1000.
  async tcpRelay() {
    const net = require('net');
    const expected = Buffer.concat([Buffer.from([0, 255, 1]), Buffer.from('é!')]);
    const received = [];
    const behind = net.createServer((socket) => {
      socket.on('data', (d) => {
        received.push(d);
        if (Buffer.concat(received).length >= expected.length) socket.end(Buffer.from('reply ✓'));
      });
    });
    await new Promise((resolve) => behind.listen(0, '127.0.0.1', resolve));
    const server = await serve(['--tcp', `127.0.0.1:${behind.address().port}`]);
    const ws = await open(server.url);
    ws.send(Buffer.from([0, 255, 1]));
    ws.send('é!');
    const closed = await withTimeout(ws.closed, 'close');
    assert.deepStrictEqual(Buffer.concat(received), expected);
    assert.strictEqual(closed.code, 1000);
    assert.strictEqual(ws.messages.length, 1);
    assert.ok(Buffer.isBuffer(ws.messages[0]), 'a binary message');
    assert.strictEqual(ws.messages[0].toString(), 'reply ✓');
    behind.close();
    server.proc.kill('SIGINT');
    await withTimeout(server.exit, 'exit');
  },

  async refusals() {
    const server = await serve(['--max-connections', '1', '--origin', 'https://good.example', '--pipe']);
    await assert.rejects(open(server.url, { origin: 'https://evil.example' }), (e) => e.status === 403);
    const first = await open(server.url, { origin: 'https://good.example' });
    await assert.rejects(open(server.url, { origin: 'https://good.example' }), (e) => e.status === 503);
    first.close();
    server.proc.kill('SIGINT');
    await withTimeout(server.exit, 'exit');
  },
};

(async () => {
  let failed = 0;
  for (const [name, test] of Object.entries(tests)) {
    const started = Date.now();
    try {
      await test();
      console.log(`ok ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.stack}`);
    }
  }
  console.log(`${Object.keys(tests).length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
