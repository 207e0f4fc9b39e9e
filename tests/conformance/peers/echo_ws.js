#!/usr/bin/env node
// Echo server built on the node "ws" package.
//
// Reference peer used to validate the conformance suite. Every text or binary
// message is sent back unchanged with the same type.
//
// Usage: NODE_PATH=/path/to/node_modules node echo_ws.js [PORT]   (PORT 0 = pick a free one)
// Prints "listening on ws://127.0.0.1:PORT/" to stderr once it accepts connections.
'use strict';

const { WebSocketServer } = require('ws');

// The 9.x cases echo messages of up to 16 MiB, and 9.3.1/9.4.1 send 4 MiB in
// 65536 fragments of 64 octets (ws 8.23 defaults to at most 16384 fragments
// per message, closing with 1008 beyond that). Leave generous headroom.
const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
const MAX_FRAGMENTS = 256 * 1024;

const port = Number(process.argv[2] || 0);
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: MAX_MESSAGE_SIZE,
  maxFragments: MAX_FRAGMENTS,
  perMessageDeflate: false,
});

server.on('listening', () => {
  console.error(`listening on ws://127.0.0.1:${server.address().port}/`);
});

server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  // Protocol errors are reported here after ws has failed the connection;
  // without a listener they would crash the process.
  socket.on('error', () => {});
});
