'use strict';
// node `ws` 8 as a peer of wsl over ws:// and wss://, driven by test_*.py (secure_harness.py).
//
//   node node_peer.js servers CONFIG_JSON   echo servers, one per config
//   node node_peer.js clients PLAN_JSON     client connections, one per case, in turn
//
// servers: CONFIG_JSON is a list of {name, tls?: {cert, key, ca?}, deflate?: ws perMessageDeflate
// options | false}. Each server prints `listening on ws[s]://127.0.0.1:PORT/ NAME` on stderr and
// one JSON line per event on stdout:
//   {"server": NAME, "event": "open", "offer": <request Sec-WebSocket-Extensions>, "response": <ours>}
//   {"server": NAME, "event": "message", "compressed": <payload bytes on the wire> | null}
//   {"server": NAME, "event": "error", "message": ...}
// It echoes every message with its type and runs until killed.
//
// clients: PLAN_JSON is {cases: [{name, url, tls?: {ca?, cert?, key?, insecure?}, deflate?: options |
// false, messages: [{type: "text"|"binary", kind: "random"|"words"|"pattern"|"again", size, of?}]}]}.
// "again" resends message number `of`. For each case, one JSON line on stdout:
//   {"case": NAME, "opened": bool, "error": ..., "response": <Sec-WebSocket-Extensions>,
//    "echoes": [{"ok": bool, "compressed": bytes | null}], "close": code}
// Exits 0 once every case has run (the test judges the results), 2 on a broken plan.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const WebSocket = require('ws');

const TIME_SCALE = Number(process.env.WSL_TIME_SCALE || '1');
const WAIT_MS = 10000 * TIME_SCALE;

function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

// Records the compressed size of each message the extension inflates; `take()` returns the size
// of the message just delivered, or null when it arrived uncompressed.
function watchCompression(ws) {
  const pmd = ws._extensions[WebSocket.PerMessageDeflate.extensionName];
  const done = [];
  let current = 0;
  if (pmd) {
    const original = pmd.decompress;
    pmd.decompress = function (data, fin, callback) {
      current += data.length;
      if (fin) {
        done.push(current);
        current = 0;
      }
      return original.call(this, data, fin, callback);
    };
  }
  return { take: () => (done.length ? done.shift() : null) };
}

function readTls(tls) {
  const out = {};
  if (!tls) return out;
  if (tls.cert) out.cert = fs.readFileSync(tls.cert);
  if (tls.key) out.key = fs.readFileSync(tls.key);
  if (tls.ca) out.ca = fs.readFileSync(tls.ca);
  return out;
}

function runServers(configs) {
  for (const config of configs) {
    const tls = readTls(config.tls);
    const server = config.tls ? https.createServer(tls) : http.createServer();
    const wss = new WebSocket.Server({ server, perMessageDeflate: config.deflate || false, maxPayload: 64 << 20 });
    let response = null;
    wss.on('headers', (headers) => {
      const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
      response = line ? line.replace(/^[^:]*:\s*/, '') : null;
    });
    wss.on('connection', (ws, req) => {
      emit({ server: config.name, event: 'open', offer: req.headers['sec-websocket-extensions'] || null, response });
      const compression = watchCompression(ws);
      ws.on('message', (data, isBinary) => {
        emit({ server: config.name, event: 'message', compressed: compression.take() });
        ws.send(data, { binary: isBinary });
      });
      ws.on('error', (e) => emit({ server: config.name, event: 'error', message: e.message }));
    });
    server.listen(0, '127.0.0.1', () => {
      const scheme = config.tls ? 'wss' : 'ws';
      process.stderr.write(`listening on ${scheme}://127.0.0.1:${server.address().port}/ ${config.name}\n`);
    });
  }
}

function makePayload(spec, earlier) {
  let bytes;
  switch (spec.kind) {
    case 'random':  // incompressible; as text, base64 of random bytes
      bytes = spec.type === 'text' ? Buffer.from(crypto.randomBytes(spec.size).toString('base64').slice(0, spec.size))
                                   : crypto.randomBytes(spec.size);
      break;
    case 'words': {  // compressible text
      const words = ['stream', 'frame', 'window', 'deflate', 'context', 'takeover', 'socket', 'message'];
      const parts = [];
      let n = 0;
      for (let i = 0; n < spec.size; ++i) {
        const w = words[(i * 7 + (i >> 3)) % words.length] + ' ';
        parts.push(w);
        n += w.length;
      }
      bytes = Buffer.from(parts.join('').slice(0, spec.size));
      break;
    }
    case 'pattern':
      bytes = Buffer.alloc(spec.size);
      for (let i = 0; i < spec.size; ++i) bytes[i] = spec.type === 'text' ? 97 + ((i * 7) % 26) : (i * 131) % 251;
      break;
    case 'again':
      bytes = earlier[spec.of];
      break;
    default:
      throw new Error(`unknown payload kind ${spec.kind}`);
  }
  return bytes;
}

function runCase(c) {
  return new Promise((resolve) => {
    const result = { case: c.name, opened: false, error: null, response: null, echoes: [], close: null };
    const tls = readTls(c.tls);
    const options = { perMessageDeflate: c.deflate || false, handshakeTimeout: WAIT_MS, maxPayload: 64 << 20, ...tls };
    if (c.tls && c.tls.insecure) options.rejectUnauthorized = false;
    let ws;
    const timer = setTimeout(() => {
      result.error = result.error || 'timed out';
      if (ws) ws.terminate();
      resolve(result);
    }, WAIT_MS);
    const finish = () => {
      clearTimeout(timer);
      resolve(result);
    };
    try {
      ws = new WebSocket(c.url, options);
    } catch (e) {
      result.error = e.message;
      return finish();
    }
    const payloads = [];
    for (const spec of c.messages || []) payloads.push(makePayload(spec, payloads));
    let compression = null;
    let next = 0;
    ws.on('upgrade', (res) => {
      result.response = res.headers['sec-websocket-extensions'] || null;
    });
    const sendNext = () => {
      if (next === payloads.length) return ws.close(1000, 'done');
      const spec = c.messages[next];
      const type = spec.type === 'text' ? 'text' : 'binary';
      ws.send(type === 'text' ? payloads[next].toString() : payloads[next], { binary: type === 'binary' });
    };
    ws.on('open', () => {
      result.opened = true;
      compression = watchCompression(ws);
      sendNext();
    });
    ws.on('message', (data, isBinary) => {
      const spec = c.messages[next];
      const ok = next < payloads.length && isBinary === (spec.type !== 'text') && Buffer.compare(data, payloads[next]) === 0;
      result.echoes.push({ ok, compressed: compression.take() });
      ++next;
      sendNext();
    });
    ws.on('error', (e) => {
      result.error = result.error || e.message;
    });
    ws.on('close', (code) => {
      result.close = code;
      finish();
    });
  });
}

async function runClients(plan) {
  for (const c of plan.cases) emit(await runCase(c));
}

const [mode, json] = process.argv.slice(2);
let config;
try {
  config = JSON.parse(json);
} catch (e) {
  process.stderr.write(`node_peer.js: bad JSON: ${e.message}\n`);
  process.exit(2);
}
if (mode === 'servers') {
  runServers(config);
} else if (mode === 'clients') {
  runClients(config).then(() => process.exit(0));
} else {
  process.stderr.write('usage: node node_peer.js servers CONFIG_JSON | clients PLAN_JSON\n');
  process.exit(2);
}
