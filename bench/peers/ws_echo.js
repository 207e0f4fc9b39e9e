// Echo server on the node `ws` package, a peer for bench/echo.
// Usage: node ws_echo.js [PORT]   (default 0: any free port)
// Prints `listening on ws://127.0.0.1:PORT/` to stderr once it accepts connections.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] ?? 0);
const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});  // a peer that resets is not the server's problem
});
server.on('listening', () => {
  process.stderr.write(`listening on ws://127.0.0.1:${server.address().port}/\n`);
});
server.on('error', (err) => {
  process.stderr.write(`ws_echo: ${err.message}\n`);
  process.exit(1);
});
