// Proves the baseline works the way the load generator expects, speaking the
// raw Engine.IO/Socket.IO v4 frames over WebSocket (not socket.io-client), so
// what is checked is exactly what loadgen sends and reads:
//
//   connect ws://host:port/socket.io/?EIO=4&transport=websocket
//   server 0{...}   client 40   server 40{...}   client 42["join","<room>"]
//   client 42["chat",{...}]     server 42["chat",{...}]      ping 2 / pong 3
//
// Two clients in one room on *different* processes must each receive the
// other's messages (only possible through the Redis adapter) and their own
// (sender included); a third client in another room must receive nothing.
//
//   node check.js ws://127.0.0.1:PORT1 ws://127.0.0.1:PORT2
//   node check.js            # starts redis-server and two server.js itself
//
// Exits 0 and prints "socketio check: ok" on success; 1 with the reason.
"use strict";

const { spawn } = require("node:child_process");
const net = require("node:net");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const WebSocket = require("ws");

const STEP_TIMEOUT_MS = 5000;
const children = [];

function die(msg) {
  console.error(`socketio check: FAILED: ${msg}`);
  cleanup();
  process.exit(1);
}

function cleanup() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Starts a child and resolves once a line of its stdout matches `ready`.
function startChild(cmd, args, env, ready, what) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  const collect = (chunk) => {
    output += chunk.toString();
  };
  child.stderr.on("data", collect);
  return withTimeout(
    new Promise((resolve, reject) => {
      child.on("error", (err) => reject(new Error(`${what}: ${err.message}`)));
      child.on("exit", (code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${output}`)));
      child.stdout.on("data", (chunk) => {
        collect(chunk);
        const m = output.match(ready);
        if (m) resolve(m);
      });
    }),
    `${what} to be ready`,
  );
}

function findRedisServer() {
  for (const dir of (process.env.PATH || "").split(":").concat(["/usr/bin", "/usr/sbin"])) {
    const candidate = path.join(dir, "redis-server");
    if (fs.existsSync(candidate)) return candidate;
  }
  return null;
}

async function startCluster() {
  const redis = findRedisServer();
  if (!redis) die("redis-server not found (apt-get install redis-server, or run bench/run, which installs it)");
  const redisPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "socketio-check-"));
  await startChild(
    redis,
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    {},
    /Ready to accept connections/,
    "redis-server",
  );
  const urls = [];
  for (let i = 0; i < 2; i++) {
    const m = await startChild(
      process.execPath,
      [path.join(__dirname, "server.js")],
      { PORT: "0", REDIS_URL: `redis://127.0.0.1:${redisPort}` },
      /listening (\d+)/,
      `server.js #${i + 1}`,
    );
    urls.push(`ws://127.0.0.1:${m[1]}`);
  }
  return urls;
}

// A client speaking raw Engine.IO v4 / Socket.IO v4 frames.
class Client {
  constructor(name, base) {
    this.name = name;
    this.url = `${base.replace(/\/$/, "")}/socket.io/?EIO=4&transport=websocket`;
    this.frames = [];
    this.chats = [];
    this.waiters = [];
    this.pings = 0;
  }

  open() {
    return withTimeout(
      new Promise((resolve, reject) => {
        this.ws = new WebSocket(this.url, { perMessageDeflate: false });
        this.ws.on("error", (err) => reject(new Error(`${this.name}: ${err.message}`)));
        this.ws.on("close", (code) => this.fail(new Error(`${this.name}: closed (${code})`)));
        this.ws.on("message", (data, isBinary) => this.onFrame(isBinary ? null : data.toString()));
        this.ws.on("open", resolve);
      }),
      `${this.name} to connect to ${this.url}`,
    );
  }

  onFrame(text) {
    if (text === null) return this.fail(new Error(`${this.name}: unexpected binary frame`));
    if (text === "2") {
      this.pings++;
      this.ws.send("3");
      return;
    }
    this.frames.push(text);
    if (text.startsWith("42")) {
      const [event, payload] = JSON.parse(text.slice(2));
      if (event !== "chat") return this.fail(new Error(`${this.name}: unexpected event ${text}`));
      this.chats.push(payload);
    }
    this.wake();
  }

  fail(err) {
    this.error = this.error || err;
    this.wake();
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  // Resolves with the first frame (from `from` on) that `pred` accepts.
  until(pred, what) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const look = () => {
          if (this.error) return reject(this.error);
          const hit = this.frames.find(pred);
          if (hit !== undefined) return resolve(hit);
          this.waiters.push(look);
        };
        look();
      }),
      `${this.name}: ${what}`,
    );
  }

  async handshake(room) {
    await this.open();
    const open = await this.until((f) => f.startsWith("0{"), "Engine.IO open packet 0{...}");
    const info = JSON.parse(open.slice(1));
    if (!info.sid || !Array.isArray(info.upgrades) || typeof info.pingInterval !== "number") {
      throw new Error(`${this.name}: odd open packet ${open}`);
    }
    this.ws.send("40");
    await this.until((f) => f.startsWith("40{"), "Socket.IO connect 40{...}");
    this.ws.send(`42${JSON.stringify(["join", room])}`);
  }

  chat(payload) {
    this.ws.send(`42${JSON.stringify(["chat", payload])}`);
  }

  got(pred) {
    return this.chats.some(pred);
  }

  close() {
    this.ws.removeAllListeners("close");
    this.ws.close();
  }
}

async function main() {
  let urls = process.argv.slice(2);
  if (urls.length === 0) {
    urls = await startCluster();
    console.log(`socketio check: started redis-server and two server.js at ${urls.join(" ")}`);
  }
  if (urls.length !== 2) die("give two server URLs (ws://host:port), or none to start them here");

  const room = `check-${process.pid}`;
  const a = new Client("A@server1", urls[0]);
  const b = new Client("B@server2", urls[1]);
  const c = new Client("C@server2(other room)", urls[1]);
  await Promise.all([a.handshake(room), b.handshake(room), c.handshake(`${room}-other`)]);

  // The join has no acknowledgement in the classic chat, so send until both
  // sides have heard the other (bounded), then require the rest.
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let n = 0;
  const fromA = (p) => p && p.from === "A";
  const fromB = (p) => p && p.from === "B";
  while (!(b.got(fromA) && a.got(fromB))) {
    if (a.error || b.error) throw a.error || b.error;
    if (Date.now() > deadline) {
      throw new Error(
        `no cross-process delivery within ${STEP_TIMEOUT_MS} ms (B heard A: ${b.got(fromA)}, A heard B: ${a.got(fromB)}); ` +
          "is the Redis adapter connected?",
      );
    }
    n++;
    a.chat({ from: "A", n, t: Date.now(), body: "x".repeat(16) });
    b.chat({ from: "B", n, t: Date.now(), body: "y".repeat(16) });
    await new Promise((r) => setTimeout(r, 50));
  }
  // Sender included: each hears itself.
  await Promise.all([
    a.until((f) => f.startsWith('42["chat",{"from":"A"'), "its own message back (sender included)"),
    b.until((f) => f.startsWith('42["chat",{"from":"B"'), "its own message back (sender included)"),
  ]);
  // The payload comes back byte for byte.
  const sample = { from: "A", n: -1, t: 1, body: "z".repeat(64), nested: { k: [1, 2, 3] } };
  a.chat(sample);
  const want = `42${JSON.stringify(["chat", sample])}`;
  await b.until((f) => f === want, "the exact frame 42[\"chat\",{...}] across processes");
  // A room boundary holds.
  await new Promise((r) => setTimeout(r, 200));
  if (c.chats.length > 0) throw new Error(`a client of another room received ${JSON.stringify(c.chats[0])}`);

  console.log(
    `socketio check: ok (A on ${urls[0]} and B on ${urls[1]} heard each other after ${n} round(s) and themselves; ` +
      "the other room heard nothing)",
  );
  for (const client of [a, b, c]) client.close();
}

process.on("SIGINT", () => die("interrupted"));
process.on("SIGTERM", () => die("terminated"));
const overall = setTimeout(() => die("did not finish within 30 s"), 30000);
main()
  .then(() => {
    clearTimeout(overall);
    cleanup();
    process.exit(0);
  })
  .catch((err) => die(err.message));
