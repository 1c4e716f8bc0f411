// The trivial application backend of the `hooks` benchmark: what a room
// node's publish hook (docs/hooks.md) talks to, doing what any real backend
// must do per call and nothing more: read the raw body, verify its
// `X-Roomrouter-Signature` (HMAC-SHA256 with the hook secret, constant-time
// compare), parse the JSON, and answer. Node.js built-in modules only.
//
// Environment:
//   PORT         port to listen on (0 picks a free one; the real one is printed)
//   HOST         address to listen on (default 127.0.0.1)
//   HOOK_SECRET  the nodes' --hook-secret (required, at least 16 characters)
//
// Routes:
//   POST /publish  {"type":"publish",...}  -> 200 {"allow":true}
//   POST /join     {"type":"join",...}     -> 200 {"allow":true}
//   either, with a missing or wrong signature -> 401; with a body that is not
//   the hook's JSON -> 400
//   GET /stats     -> 200 {"publish":N,"join":N,"unsigned":N,"invalid":N}:
//                     calls answered since start, so a benchmark can check
//                     that every message went through the hook
//
// Keep-alive: the nodes' HTTP client (hyper's pool) keeps idle connections
// for 90 s; the server keeps them longer (Node's default is 5 s), so that it
// never closes one the pool is about to reuse (a failed call) and a pause in
// the load does not turn into reconnects.
//
// Prints "listening <port>" on stdout once it accepts connections. No
// per-request logging.
"use strict";

const http = require("node:http");
const { createHmac, timingSafeEqual } = require("node:crypto");

const PORT = Number.parseInt(process.env.PORT ?? "0", 10);
const HOST = process.env.HOST || "127.0.0.1";
const SECRET = process.env.HOOK_SECRET || "";
const SIGNATURE_HEADER = "x-roomrouter-signature";
// The nodes' answers are at most 1 MiB; their requests are far smaller.
const MAX_BODY_BYTES = 1 << 20;
const IDLE_KEEPALIVE_MS = 120_000;

const ALLOW = Buffer.from('{"allow":true}');
const counts = { publish: 0, join: 0, unsigned: 0, invalid: 0 };

function fail(what) {
  console.error(`hook backend: ${what}`);
  process.exit(1);
}

// Whether `header` is "sha256=<hex HMAC-SHA256 of raw>" (constant time).
function signed(raw, header) {
  const expected = Buffer.from("sha256=" + createHmac("sha256", SECRET).update(raw).digest("hex"));
  const given = Buffer.from(String(header ?? ""));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function answer(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

function handleHook(req, res, kind) {
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (!signed(raw, req.headers[SIGNATURE_HEADER])) {
      counts.unsigned += 1;
      answer(res, 401, Buffer.from('{"error":"bad signature"}'));
      return;
    }
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      msg = null;
    }
    if (!msg || msg.type !== kind || typeof msg.room !== "string") {
      counts.invalid += 1;
      answer(res, 400, Buffer.from('{"error":"not a hook request"}'));
      return;
    }
    counts[kind] += 1;
    answer(res, 200, ALLOW);
  });
}

function main() {
  if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) fail(`bad PORT ${process.env.PORT}`);
  if (SECRET.length < 16) fail("HOOK_SECRET must be set, at least 16 characters (the nodes' --hook-secret)");
  const server = http.createServer((req, res) => {
    if (req.method === "POST" && req.url === "/publish") return handleHook(req, res, "publish");
    if (req.method === "POST" && req.url === "/join") return handleHook(req, res, "join");
    if (req.method === "GET" && req.url === "/stats") return answer(res, 200, Buffer.from(JSON.stringify(counts)));
    req.resume();
    answer(res, 404, Buffer.from('{"error":"not found"}'));
  });
  server.keepAliveTimeout = IDLE_KEEPALIVE_MS;
  server.headersTimeout = IDLE_KEEPALIVE_MS + 1000;
  server.on("error", (err) => fail(`listen: ${err.message}`));
  server.listen(PORT, HOST, () => {
    console.log(`listening ${server.address().port}`);
  });
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      server.close();
      process.exit(0);
    });
  }
}

main();
