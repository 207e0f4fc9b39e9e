#!/usr/bin/env node
// A node `ws` server for driving `wsl pipe` and `wsl latency`; the same command line and events
// as peer_websockets.py:
//
//   NODE_PATH=.deps/node/node_modules node peer_ws.js MODE [--send JSON] [--close-code N]
//       [--close-reason TEXT] [--subprotocols a,b] [--no-pong] [--deflate] [--tls CERT KEY]
//       [--stall SECONDS] [--replies N] [--close-after N]
//       [--redirect-from PATH --location URL [--status N]] [--answer-after SECONDS] [--unix PATH]
//       [--push-every SECONDS] [--push-size N]
//
// Modes: echo (every message back with its type; --no-pong leaves pings unanswered; --close-after
// N closes each connection with --close-code and --close-reason once N messages went back), script
// (sends --send, a JSON list of {"text": s} or {"hex": h}, then closes with --close-code and
// --close-reason), ack (answers every message with a text message `ack N`, N its number on the
// connection; {"event": "acked", "count": N} at the close), push (once a connection's first message
// came, sends it --push-size (100) zero bytes every --push-every (0.01) seconds until it closes,
// records every message; {"event": "pushed", "count": N} at the close), chat (every message
// received goes to every open connection, its sender too, as the text of a JSON object
// {"from": N, "text": T}, N the sender's number from 1, T the message, a binary one as hex;
// {"event": "chatted", "count": messages that connection sent} at its close), relay (sends --send, then records what it receives, answering nothing, and
// closes with --close-code and --close-reason after --replies N messages; 0: never), refuse (403
// with a text body), silent (accepts TCP, never answers).
// --deflate accepts permessage-deflate; --tls serves wss:// with that certificate and key.
// --stall S (echo): the first connection reads nothing for S seconds after its handshake, and no
// message events are emitted.
// --redirect-from PATH (not silent): an upgrade request for PATH (the query aside) gets --status
// (302) with `Location: --location`, and emits {"event": "redirect", "path", "headers"}.
// --answer-after S (not silent): every upgrade request waits S seconds for its answer.
// --unix PATH: listen on this Unix-domain socket instead (its line: `listening on ws+unix:PATH`).
// Prints `listening on ws://127.0.0.1:PORT/` on stderr when ready and one JSON object per event
// on stdout. Runs until killed.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const tls = require('tls');
const { WebSocketServer } = require('ws');

function parse(argv) {
  const args = { mode: argv[0], send: '[]', closeCode: 1000, closeReason: '', subprotocols: [], noPong: false,
                 deflate: false, tls: null, stall: 0, replies: 0, closeAfter: 0, redirectFrom: '', location: '',
                 status: 302, answerAfter: 0, unix: '', pushEvery: 0.01, pushSize: 100 };
  for (let i = 1; i < argv.length; ++i) {
    switch (argv[i]) {
      case '--send': args.send = argv[++i]; break;
      case '--close-code': args.closeCode = Number(argv[++i]); break;
      case '--close-reason': args.closeReason = argv[++i]; break;
      case '--subprotocols': args.subprotocols = argv[++i].split(',').filter((p) => p); break;
      case '--no-pong': args.noPong = true; break;
      case '--deflate': args.deflate = true; break;
      case '--stall': args.stall = Number(argv[++i]); break;
      case '--replies': args.replies = Number(argv[++i]); break;
      case '--close-after': args.closeAfter = Number(argv[++i]); break;
      case '--redirect-from': args.redirectFrom = argv[++i]; break;
      case '--location': args.location = argv[++i]; break;
      case '--status': args.status = Number(argv[++i]); break;
      case '--answer-after': args.answerAfter = Number(argv[++i]); break;
      case '--unix': args.unix = argv[++i]; break;
      case '--push-every': args.pushEvery = Number(argv[++i]); break;
      case '--push-size': args.pushSize = Number(argv[++i]); break;
      case '--tls': args.tls = { cert: fs.readFileSync(argv[++i]), key: fs.readFileSync(argv[++i]) }; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!['echo', 'ack', 'push', 'chat', 'script', 'relay', 'refuse', 'silent'].includes(args.mode)) throw new Error(`unknown mode ${args.mode}`);
  return args;
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function listening(server) {
  if (args.unix) process.stderr.write(`listening on ws+unix:${args.unix}\n`);
  else process.stderr.write(`listening on ${args.tls ? 'wss' : 'ws'}://127.0.0.1:${server.address().port}/\n`);
}

function listen(server) {
  if (args.unix) server.listen(args.unix, () => listening(server));
  else server.listen(0, '127.0.0.1', () => listening(server));
}

const args = parse(process.argv.slice(2));

if (args.mode === 'silent') {
  const server = (args.tls ? tls : net).createServer(args.tls || {}, (socket) => {
    emit({ event: 'tcp' });
    socket.on('error', () => {});
    socket.resume();  // reads and ignores the request; never answers
  });
  listen(server);
} else {
  let stalls = args.stall ? 1 : 0;
  let joined = 0;  // chat: connections so far
  const script = JSON.parse(args.send).map((m) => ('text' in m ? m.text : Buffer.from(m.hex, 'hex')));
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: args.deflate,
    maxPayload: 0,
    autoPong: !args.noPong,
    handleProtocols: (offered) => {
      for (const p of offered) if (args.subprotocols.includes(p)) return p;
      return false;
    },
  });
  const answer = (req, res) => res.writeHead(426).end();
  const server = args.tls ? https.createServer(args.tls, answer) : http.createServer(answer);
  server.on('upgrade', (req, socket, head) => {
    if (args.answerAfter) setTimeout(() => upgrade(req, socket, head), args.answerAfter * 1000);
    else upgrade(req, socket, head);
  });
  const upgrade = (req, socket, head) => {
    if (args.redirectFrom && req.url.split('?')[0] === args.redirectFrom) {
      const headers = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      emit({ event: 'redirect', path: req.url, headers });
      socket.end(`HTTP/1.1 ${args.status} ${http.STATUS_CODES[args.status]}\r\nLocation: ${args.location}\r\n` +
                 'Content-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (args.mode === 'refuse') {
      const body = 'forbidden: no token for this test\n';
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
                 `Connection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const headers = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      emit({ event: 'open', path: req.url, headers, subprotocol: ws.protocol || null, remote: req.socket.remoteAddress });
      ws.on('close', (code, reason) => emit({ event: 'close', code, reason: reason.toString() }));
      ws.on('error', () => {});
      if (args.mode === 'script') {
        for (const m of script) ws.send(m, { binary: Buffer.isBuffer(m) });
        ws.close(args.closeCode, args.closeReason);
        return;
      }
      if (args.mode === 'ack') {
        let acked = 0;
        ws.on('message', () => ws.send(`ack ${++acked}`));
        ws.on('close', () => emit({ event: 'acked', count: acked }));
        return;
      }
      if (args.mode === 'push') {
        let pushed = 0;
        let timer = null;
        const payload = Buffer.alloc(args.pushSize);
        ws.on('message', (data, isBinary) => {
          emit({ event: 'message', type: isBinary ? 'binary' : 'text', hex: Buffer.from(data).toString('hex') });
          if (timer) return;
          const send = () => {
            if (ws.readyState !== ws.OPEN) return;
            ws.send(payload);
            ++pushed;
          };
          send();
          timer = setInterval(send, args.pushEvery * 1000);
        });
        ws.on('close', () => {
          clearInterval(timer);
          emit({ event: 'pushed', count: pushed });
        });
        return;
      }
      if (args.mode === 'chat') {
        const number = ++joined;
        let chatted = 0;
        ws.on('message', (data, isBinary) => {
          ++chatted;
          const text = JSON.stringify({ from: number, text: isBinary ? Buffer.from(data).toString('hex') : data.toString() });
          for (const other of wss.clients) if (other.readyState === other.OPEN) other.send(text);
        });
        ws.on('close', () => emit({ event: 'chatted', count: chatted }));
        return;
      }
      if (args.mode === 'relay') {
        for (const m of script) ws.send(m, { binary: Buffer.isBuffer(m) });
        let received = 0;
        ws.on('message', (data, isBinary) => {
          emit({ event: 'message', type: isBinary ? 'binary' : 'text', hex: Buffer.from(data).toString('hex') });
          if (++received === args.replies) ws.close(args.closeCode, args.closeReason);
        });
        return;
      }
      if (args.stall) {
        if (stalls > 0) {
          --stalls;
          ws.pause();  // stops reading the socket
          setTimeout(() => ws.resume(), args.stall * 1000);
        }
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        return;
      }
      let echoed = 0;
      ws.on('message', (data, isBinary) => {
        emit({ event: 'message', type: isBinary ? 'binary' : 'text', hex: Buffer.from(data).toString('hex') });
        ws.send(data, { binary: isBinary });
        if (++echoed === args.closeAfter) ws.close(args.closeCode, args.closeReason);
      });
    });
  };
  listen(server);
}
