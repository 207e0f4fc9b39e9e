// Broadcast server on the node `ws` package, a peer for bench/broadcast: every line of stdin goes
// to every client as a text message, as `wsl serve --pipe` does. Like it, stdin is read at the pace
// of the fastest client: reading pauses while every client has more than 1 MiB waiting to be sent
// (and while nobody is connected), so a flood of input cannot fill the memory.
// With --relay, every message a client sends is written to stdout as a line, as `wsl serve --pipe`
// does: bench/chat feeds stdout back to stdin, which makes a chat room of either.
// Usage: node ws_broadcast.js [--relay] [PORT]   (default 0: any free port)
// Prints `listening on ws://127.0.0.1:PORT/` to stderr once it accepts connections.
'use strict';
const { WebSocketServer } = require('ws');
const readline = require('readline');

const args = process.argv.slice(2);
const relay = args[0] === '--relay';
if (relay) args.shift();
const port = Number(args[0] ?? 0);
const limit = 1 << 20;
const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.pause();

const hasRoom = () => {
  for (const client of server.clients) if (client.bufferedAmount <= limit) return true;
  return false;
};
let waiting = false;
const resumeWhenRoom = () => {
  if (hasRoom()) {
    waiting = false;
    lines.resume();
  } else {
    setTimeout(resumeWhenRoom, 1);
  }
};

lines.on('line', (line) => {
  for (const client of server.clients) client.send(line);
  if (!waiting && !hasRoom()) {
    waiting = true;
    lines.pause();
    setTimeout(resumeWhenRoom, 1);
  }
});
lines.on('close', () => {
  for (const client of server.clients) client.close(1000);
});
server.on('connection', (ws) => {
  ws.on('error', () => {});  // a peer that resets is not the server's problem
  if (relay) ws.on('message', (data) => process.stdout.write(`${data}\n`));
  if (!waiting) lines.resume();
});
server.on('listening', () => {
  process.stderr.write(`listening on ws://127.0.0.1:${server.address().port}/\n`);
});
server.on('error', (err) => {
  process.stderr.write(`ws_broadcast: ${err.message}\n`);
  process.exit(1);
});
