// The page of --devconsole (devconsole.hpp). Everything it shows of a message goes through
// textContent, never markup: a server's messages cannot script the page.
#include "devconsole.hpp"

#include <string>
#include <string_view>

namespace wsl::cli {
namespace {

constexpr std::string_view page = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsl console</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header, footer { display: flex; gap: .5em; padding: .5em; background: #eee; align-items: center; flex-wrap: wrap; }
  #url { flex: 1 1 20em; font-family: monospace; }
  #protocols { width: 10em; }
  #status { font-family: monospace; }
  #log { flex: 1; overflow-y: auto; margin: 0; padding: .5em 1em; list-style: none; font-family: monospace; }
  #log li { white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #f0f0f0; }
  #log time { color: #888; margin-right: .5em; }
  #log .mark { display: inline-block; width: 1.5em; }
  .sent .mark { color: #06c; } .received .mark { color: #080; } .error { color: #c00; } .event { color: #666; }
  #input { flex: 1 1 20em; font-family: monospace; }
</style>
</head>
<body>
<header>
  <input id="url" aria-label="WebSocket URL" spellcheck="false">
  <input id="protocols" aria-label="subprotocols" placeholder="subprotocols" spellcheck="false">
  <button id="toggle">Connect</button>
  <span id="status">closed</span>
</header>
<ol id="log" aria-live="polite"></ol>
<footer>
  <textarea id="input" rows="2" placeholder="Enter sends, Shift+Enter is a new line, arrows recall" spellcheck="false"></textarea>
  <label><input type="checkbox" id="binary"> binary (hex)</label>
  <button id="send" disabled>Send</button>
  <button id="clear">Clear</button>
</footer>
<script>
'use strict';
const $ = id => document.getElementById(id);
const log = $('log'), input = $('input');
let ws = null;
const sent = [];
let recalled = 0;

$('url').value = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + location.pathname + location.search;

function hex(bytes, limit) {
  const shown = Array.from(bytes.subarray(0, limit), b => b.toString(16).padStart(2, '0')).join(' ');
  return bytes.length > limit ? shown + ' \u2026' : shown;
}

function add(kind, text) {
  const item = document.createElement('li');
  item.className = kind;
  item.dataset.kind = kind;
  const time = document.createElement('time');
  time.textContent = new Date().toISOString().slice(11, 23);
  const mark = document.createElement('span');
  mark.className = 'mark';
  mark.textContent = {sent: '\u2192', received: '\u2190', event: '\u2022', error: '!'}[kind];
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = text;
  item.append(time, mark, body);
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(item);
  if (atEnd) item.scrollIntoView({block: 'end'});
}

function setState(open, text) {
  $('status').textContent = text;
  $('toggle').textContent = ws ? 'Disconnect' : 'Connect';
  $('send').disabled = !open;
}

function connect() {
  const protocols = $('protocols').value.split(',').map(p => p.trim()).filter(p => p);
  try {
    ws = new WebSocket($('url').value, protocols);
  } catch (e) {
    ws = null;
    add('error', String(e.message || e));
    setState(false, 'closed');
    return;
  }
  ws.binaryType = 'arraybuffer';
  const socket = ws;
  setState(false, 'connecting');
  socket.onopen = () => {
    const details = [socket.protocol && 'subprotocol ' + socket.protocol, socket.extensions && 'extensions ' + socket.extensions];
    add('event', 'open ' + socket.url + (details.some(d => d) ? ' (' + details.filter(d => d).join(', ') + ')' : ''));
    setState(true, 'open');
    input.focus();
  };
  socket.onmessage = event => {
    if (typeof event.data === 'string') add('received', event.data);
    else {
      const bytes = new Uint8Array(event.data);
      add('received', 'binary, ' + bytes.length + ' bytes: ' + hex(bytes, 256));
    }
  };
  socket.onerror = () => add('error', 'error (the browser gives no details: see the server\u2019s log)');
  socket.onclose = event => {
    add('event', 'closed ' + event.code + (event.reason ? ' "' + event.reason + '"' : '') + (event.wasClean ? '' : ' (not clean)'));
    if (ws === socket) ws = null;
    setState(false, 'closed ' + event.code);
  };
}

function send() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const text = input.value;
  if ($('binary').checked) {
    const digits = text.replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(digits)) {
      add('error', 'not hex: ' + text);
      return;
    }
    const bytes = new Uint8Array(digits.length / 2);
    for (let i = 0; i < bytes.length; ++i) bytes[i] = parseInt(digits.substr(2 * i, 2), 16);
    ws.send(bytes);
    add('sent', 'binary, ' + bytes.length + ' bytes: ' + hex(bytes, 256));
  } else {
    ws.send(text);
    add('sent', text);
  }
  if (text && sent[sent.length - 1] !== text) sent.push(text);
  recalled = sent.length;
  input.value = '';
}

$('toggle').onclick = () => { if (ws) ws.close(1000); else connect(); };
$('send').onclick = send;
$('clear').onclick = () => log.replaceChildren();
$('url').onkeydown = event => { if (event.key === 'Enter') { if (ws) ws.close(1000); connect(); } };
input.onkeydown = event => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    send();
  } else if ((event.key === 'ArrowUp' || event.key === 'ArrowDown') && !input.value.includes('\n')) {
    const next = recalled + (event.key === 'ArrowUp' ? -1 : 1);
    if (next < 0 || next > sent.length) return;
    event.preventDefault();
    recalled = next;
    input.value = sent[next] ?? '';
  }
};
connect();
</script>
</body>
</html>
)html";

}  // namespace

void serve_devconsole(const http_request& req, http_response& res) {
  res.reason.clear();
  res.headers = {};
  if (req.method != "GET" && req.method != "HEAD") {
    res.status = 405;
    res.headers.add("Content-Type", "text/plain; charset=utf-8");
    res.headers.add("Allow", "GET, HEAD");
    res.body = "only GET and HEAD are served here (--devconsole)\n";
    return;
  }
  if (req.path == "/favicon.ico") {  // what browsers ask for next: not a console
    res.status = 404;
    res.headers.add("Content-Type", "text/plain; charset=utf-8");
    res.body = "not found\n";
    return;
  }
  res.status = 200;
  res.headers.add("Content-Type", "text/html; charset=utf-8");
  res.headers.add("Cache-Control", "no-store");
  res.headers.add("X-Content-Type-Options", "nosniff");
  res.headers.add("Referrer-Policy", "no-referrer");
  res.headers.add("Content-Security-Policy",
                  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ws: wss:; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  res.headers.add("Content-Length", std::to_string(page.size()));
  if (req.method == "HEAD")
    res.body.clear();
  else
    res.body.assign(page);
}

}  // namespace wsl::cli
