// What every Socket.IO client scenario shares: its command line, the real
// socket.io-client with the options the scenarios vary, a native WebSocket
// member (the `ws` package), bounded waits, and the one JSON line of
// results each script prints (exit 0), or `{"ok":false,"error":…}` (exit 1).
// tests/tests/socketio_client.rs runs the scripts and asserts on the line.

import http from "node:http";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
import WebSocket from "ws";

/** Bound on one wait (a connect, an ack, a delivery). */
export const WAIT_MS = 8000;

/** Bound on a whole script: it fails rather than hang the test. */
const SCRIPT_MS = 60000;

const open = [];

/** The script's `--name value` options (repeatable ones as arrays). */
export function options(spec) {
  const { values } = parseArgs({ options: spec, strict: true });
  return values;
}

/**
 * socket.io-client's `io(url + nsp, { path, transports })` with reconnection
 * quick enough for tests; `transport` is "websocket", "polling" or
 * "default" (polling, then the upgrade).
 */
export function client(url, path, { transport = "default", nsp = "/", ...extra } = {}) {
  const opts = {
    path,
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
    timeout: WAIT_MS,
    ...extra,
  };
  if (transport !== "default") opts.transports = [transport];
  const socket = io(url + (nsp === "/" ? "" : nsp), opts);
  // The Manager opens its first engine at once: the transport it starts on.
  socket.firstTransport = socket.io.engine.transport.name;
  open.push(socket);
  return socket;
}

/** Resolves on the next "connect", rejects on "connect_error" or timeout. */
export function connected(socket, what = "connect") {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: no connect within ${WAIT_MS} ms`)), WAIT_MS);
    const onConnect = () => done(null);
    const onError = (err) => done(new Error(`${what}: connect_error ${err.message} ${JSON.stringify(err.data)}`));
    function done(err) {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      if (err) reject(err);
      else resolve(socket);
    }
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/** A connected client (see `client`). */
export async function connect(url, path, opts = {}) {
  const socket = client(url, path, opts);
  return connected(socket, `connecting to ${url} path ${path}`);
}

/** The `connect_error` a connect attempt ends with: `{message, data}`. */
export function refusal(url, path, opts = {}) {
  const socket = client(url, path, { reconnection: false, ...opts });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connect_error within ${WAIT_MS} ms`)), WAIT_MS);
    socket.on("connect", () => {
      clearTimeout(timer);
      reject(new Error(`connected to ${path} with ${JSON.stringify(opts.auth)}; expected a refusal`));
    });
    socket.on("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      resolve({ message: err.message, data: err.data ?? null });
    });
  });
}

/** Every `event` the socket receives, as its argument list. */
export function record(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

/** `emit(event, ...args)` and its ack's argument, within WAIT_MS. */
export function ack(socket, event, ...args) {
  return socket.timeout(WAIT_MS).emitWithAck(event, ...args);
}

/** Polls `cond` every 10 ms until it holds; fails naming `what` after `ms`. */
export async function until(what, cond, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the arguments of the socket's next `event`. */
export function next(socket, event, what = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/**
 * Closes the client's transport under its engine, as a lost connection
 * does ("transport close"), with reconnection held until `resume` is
 * called: resolves with the "disconnect" reason. The client keeps its
 * `pid` and last offset.
 */
export async function drop(socket) {
  const disconnect = next(socket, "disconnect", "disconnect after the transport was closed");
  socket.io.reconnection(false);
  socket.io.engine.transport.close();
  const [reason] = await disconnect;
  return reason;
}

/** Lets a dropped client reconnect (with its `pid` and offset). */
export function resume(socket) {
  socket.io.reconnection(true);
  socket.connect();
  return connected(socket, "reconnecting");
}

/**
 * A native member: the room's WebSocket protocol at `url` (`ws://…/iN/room/{id}`),
 * its welcome read; `frames` holds every frame after it.
 */
export function native(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames = [];
    const timer = setTimeout(() => reject(new Error(`no welcome from ${url}`)), WAIT_MS);
    let welcome = null;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (welcome) {
        frames.push(frame);
        return;
      }
      clearTimeout(timer);
      if (frame.type !== "welcome") return reject(new Error(`first frame ${data}`));
      welcome = frame;
      resolve({
        welcome,
        frames,
        send: (body) => ws.send(JSON.stringify({ type: "send", body })),
        /** Its `message` frames. */
        messages: () => frames.filter((f) => f.type === "message"),
        close: () => ws.close(),
      });
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    open.push({ close: () => ws.terminate() });
  });
}

/** Hex of a received binary argument (Buffer in Node), else null. */
export function hex(value) {
  return value instanceof Uint8Array ? Buffer.from(value).toString("hex") : null;
}

/**
 * A local HTTP proxy (plain requests only: polling) that sends each
 * request to the next of `bases` in turn, on a connection of its own, and
 * holds every poll of a session (a GET with `sid`) `holdPollsMs` before
 * passing it on. `seen[i]` counts the requests target i got and the
 * sessions they belonged to.
 */
export function relay(bases, { holdPollsMs = 0 } = {}) {
  const targets = bases.map((b) => new URL(b));
  const agent = new http.Agent({ keepAlive: false });
  const seen = targets.map(() => ({ requests: 0, sids: new Set() }));
  let turn = 0;
  const server = http.createServer((req, res) => {
    const i = turn++ % targets.length;
    const target = targets[i];
    seen[i].requests++;
    const sid = new URL(req.url, "http://x").searchParams.get("sid");
    if (sid) seen[i].sids.add(sid);
    const forward = () => {
      const up = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host, connection: "close" },
          agent,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      req.pipe(up);
    };
    if (sid && req.method === "GET" && holdPollsMs > 0) setTimeout(forward, holdPollsMs);
    else forward();
  });
  open.push({ close: () => server.close() });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${server.address().port}`, seen })),
  );
}

/** Runs `scenario`, prints its result as one JSON line and exits. */
export function main(scenario) {
  const guard = setTimeout(() => finish({ ok: false, error: `script still running after ${SCRIPT_MS} ms` }, 1), SCRIPT_MS);
  scenario().then(
    (result) => finish({ ok: true, ...result }, 0),
    (err) => finish({ ok: false, error: String(err && err.stack ? err.stack : err) }, 1),
  );
  function finish(line, code) {
    clearTimeout(guard);
    // Before the clients close: what they record must not change.
    const text = JSON.stringify(line) + "\n";
    for (const s of open) {
      try {
        s.close();
      } catch {
        // Closing what is already gone.
      }
    }
    process.stdout.write(text, () => process.exit(code));
  }
}
