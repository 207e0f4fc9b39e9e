// A TCP echo server on node's net module: the server behind the bridges of bench/tcp.
// Usage: node tcp_echo.js   Prints `tcp PORT` to stderr once it accepts connections.
'use strict';
const net = require('net');

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.pipe(socket);
  socket.on('error', () => {});  // a bridge that resets is not the echo's problem
});
server.listen(0, '127.0.0.1', () => process.stderr.write(`tcp ${server.address().port}\n`));
