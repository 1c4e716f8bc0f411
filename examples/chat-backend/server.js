// The application's backend of a chat on roomrouter: its join, publish and
// events hooks (docs/hooks.md) on plain node:http, no dependencies.
//
//   POST /join     who may join, under which name (keys in config.json, or guests)
//   POST /publish  a length limit and a word filter; surrounding whitespace trimmed
//   POST /events   every accepted message appended once to data/messages.jsonl
//
// Every request must carry X-Roomrouter-Signature: sha256=<hex HMAC-SHA256
// of the raw body> made with HOOK_SECRET (the nodes' --hook-secret); others
// get 401. Environment: HOOK_SECRET (required), PORT (4000; 0 picks a free
// one), HOST (127.0.0.1), DATA_DIR (./data), CONFIG (./config.json).
import { createHmac, timingSafeEqual } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const SECRET = process.env.HOOK_SECRET;
if (!SECRET) {
  console.error("HOOK_SECRET is required: the same value as the nodes' --hook-secret");
  process.exit(2);
}
const config = JSON.parse(readFileSync(process.env.CONFIG || join(here, "config.json"), "utf8"));
const dataDir = process.env.DATA_DIR || join(here, "data");
const messagesFile = join(dataDir, "messages.jsonl");
const MAX_BODY = 1 << 20;
const MAX_NAME = 64; // roomrouter's longest display name

// ---- signatures --------------------------------------------------------

function signed(raw, header) {
  const expected = Buffer.from("sha256=" + createHmac("sha256", SECRET).update(raw).digest("hex"));
  const given = Buffer.from(String(header || ""));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---- join: keys, bans, guests ------------------------------------------

const banned = new Set(config.banned.map((n) => n.toLowerCase()));
const memberNames = new Set(Object.values(config.keys).map((n) => n.toLowerCase()));

// A key from the native query (?key=), Socket.IO's auth ({ key }) or an
// Authorization: Bearer header (non-browser clients).
function keyOf(req) {
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization || "");
  return req.query.key || (req.query.auth && req.query.auth.key) || (bearer && bearer[1]) || null;
}

function onJoin(req) {
  const key = keyOf(req);
  if (key !== null) {
    const name = Object.hasOwn(config.keys, key) ? config.keys[key] : null;
    return name ? { allow: true, name } : { allow: false, reason: "unknown key" };
  }
  const name = (req.name || "").trim();
  if (!name) return { allow: false, reason: "pick a display name" };
  if (banned.has(name.toLowerCase())) return { allow: false, reason: "banned" };
  if (!config.guests) return { allow: false, reason: "members only: join with your key" };
  if (memberNames.has(name.toLowerCase())) return { allow: false, reason: "that name belongs to a member: join with your key" };
  // Guests are renamed, so nobody passes for a member.
  return { allow: true, name: [...name].slice(0, MAX_NAME - 8).join("") + " (guest)" };
}

// ---- publish: trim, length, words --------------------------------------

const blocked = new Set(config.blocked_words.map((w) => w.toLowerCase()));

// The text of a chat message and how to put a new text back: a plain string
// body, or a Socket.IO event's body {"event":"chat","args":[text]} (what
// socket.emit("chat", text) and the chat page send). Other bodies: null.
function textOf(body) {
  if (typeof body === "string") return { text: body, wrap: (t) => t };
  if (body && typeof body.event === "string" && Array.isArray(body.args)
      && body.args.length === 1 && typeof body.args[0] === "string") {
    return { text: body.args[0], wrap: (t) => ({ event: body.event, args: [t] }) };
  }
  return null;
}

function onPublish(req) {
  const chat = textOf(req.body);
  if (!chat) return { allow: true }; // not a chat line (e.g. a typing notice): as sent
  const text = chat.text.trim();
  if (!text) return { allow: false, reason: "empty message" };
  const length = [...text].length;
  if (length > config.max_length) {
    return { allow: false, reason: `too long: ${length} characters, at most ${config.max_length}` };
  }
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  if (words.some((w) => blocked.has(w))) return { allow: false, reason: "message contains a blocked word" };
  // Accepted; trimmed when it needs to be (the room delivers the new body).
  return text === chat.text ? { allow: true } : { allow: true, body: chat.wrap(text) };
}

// ---- events: persist each message once ---------------------------------

// (room, stream, seq) identifies a message: the feed is at least once, so a
// batch may come again (after a timeout, a restart of a node's sender).
const keyOfMessage = (e) => JSON.stringify([e.room, e.stream, e.seq]);
const stored = new Set();
mkdirSync(dataDir, { recursive: true });
if (existsSync(messagesFile)) {
  for (const line of readFileSync(messagesFile, "utf8").split("\n")) {
    try { stored.add(keyOfMessage(JSON.parse(line))); } catch { /* empty or torn last line */ }
  }
}

function onEvents(req) {
  const fresh = [];
  const keys = new Set();
  for (const e of req.events) {
    if (e.type === "joined" || e.type === "left") {
      console.log(`${e.room}: ${e.name || e.member} ${e.type}`);
    } else if (e.type === "message") {
      const key = keyOfMessage(e);
      if (stored.has(key) || keys.has(key)) continue;
      keys.add(key);
      fresh.push(JSON.stringify({ room: e.room, stream: e.stream, seq: e.seq, from: e.from, name: e.name, body: e.body }) + "\n");
    }
  }
  // One append per batch; only then are the keys taken as stored. A failed
  // write answers 500 and the node sends the same batch again.
  if (fresh.length) appendFileSync(messagesFile, fresh.join(""));
  for (const key of keys) stored.add(key);
  return null;
}

// ---- HTTP ----------------------------------------------------------------

const routes = { "/join": onJoin, "/publish": onPublish, "/events": onEvents };

function reply(res, status, value) {
  const body = value === null ? "" : JSON.stringify(value);
  res.writeHead(status, value === null ? {} : { "content-type": "application/json" });
  res.end(body);
}

const server = createServer((req, res) => {
  const route = routes[req.url];
  if (!route) return reply(res, 404, { error: "not found" });
  if (req.method !== "POST") return reply(res, 405, { error: "POST only" });
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) { reply(res, 413, { error: "body too large" }); req.destroy(); }
    else chunks.push(chunk);
  });
  req.on("end", () => {
    if (res.headersSent) return;
    const raw = Buffer.concat(chunks);
    // The signature covers the raw bytes: check it before parsing.
    if (!signed(raw, req.headers["x-roomrouter-signature"])) return reply(res, 401, { error: "bad signature" });
    let body;
    try { body = JSON.parse(raw); } catch { return reply(res, 400, { error: "not JSON" }); }
    try {
      const answer = route(body);
      reply(res, answer === null ? 204 : 200, answer);
    } catch (e) {
      console.error(`${req.url}: ${e.stack || e}`);
      reply(res, 500, { error: "internal error" });
    }
  });
});

server.listen(Number(process.env.PORT ?? 4000), process.env.HOST || "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`chat-backend listening on http://${address}:${port} (messages in ${messagesFile})`);
});
// Appends are synchronous: nothing is half done between two events.
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
