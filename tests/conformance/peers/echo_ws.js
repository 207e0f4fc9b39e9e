#!/usr/bin/env node
// Echo server built on the node "ws" package.
//
// Reference peer used to validate the conformance suite. Every text or binary
// message is sent back unchanged with the same type.
//
// Usage: NODE_PATH=/path/to/node_modules node echo_ws.js [--deflate] [PORT]   (PORT 0 = pick a free one)
// Prints "listening on ws://127.0.0.1:PORT/" to stderr once it accepts connections.
// --deflate negotiates permessage-deflate (ws's defaults, but compressing every
// message: threshold 0), for the conformance cases 12.x-14.x.
'use strict';

const { WebSocketServer } = require('ws');

// The 9.x cases echo messages of up to 16 MiB, and 9.3.1/9.4.1 send 4 MiB in
// 65536 fragments of 64 octets (ws 8.23 defaults to at most 16384 fragments
// per message, closing with 1008 beyond that). Leave generous headroom.
const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
const MAX_FRAGMENTS = 256 * 1024;

const args = process.argv.slice(2);
const deflate = args.includes('--deflate');
const port = Number(args.filter((a) => a !== '--deflate')[0] || 0);
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: MAX_MESSAGE_SIZE, // also limits the inflated size of compressed messages
  maxFragments: MAX_FRAGMENTS,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
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
