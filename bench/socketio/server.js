// The baseline roomrouter is measured against: the classic Socket.IO chat
// server scaled out with the Redis adapter, as in the Socket.IO docs and the
// usual "scaling Socket.IO" articles. Run two (or more) of these behind a
// round-robin balancer with one Redis: every `io.to(room).emit` is published
// through Redis and received by every process, which delivers it to the
// members of the room it holds.
//
// Environment:
//   PORT       port to listen on (0 picks a free one; the real one is printed)
//   HOST       address to listen on (default 127.0.0.1)
//   REDIS_URL  Redis for the adapter's pub/sub (default redis://127.0.0.1:6379)
//
// Protocol (Socket.IO v4 over Engine.IO v4, WebSocket transport only):
//   client: 42["join","<room>"]   joins <room> (a socket is in one room: a new
//                                 join leaves the previous one)
//   client: 42["chat",<payload>]  every member of the socket's room, sender
//                                 included, gets 42["chat",<payload>]
//
// Prints "listening <port>" on stdout once Redis is connected and the HTTP
// server accepts connections. No per-message logging.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const PORT = Number.parseInt(process.env.PORT ?? "3000", 10);
const HOST = process.env.HOST || "127.0.0.1";
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
// Attempts to reach Redis at start (about five seconds) before giving up.
const STARTUP_RETRIES = 10;

function fail(what, err) {
  console.error(`socketio baseline: ${what}: ${err && err.message ? err.message : err}`);
  process.exit(1);
}

async function main() {
  if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
    fail("bad PORT", process.env.PORT);
  }

  // node-redis retries forever by default, so an unreachable Redis would
  // leave the server silently not ready: give up after STARTUP_RETRIES at
  // start; once connected, reconnect with a short backoff.
  let connected = false;
  const reconnectStrategy = (retries, cause) => {
    if (!connected && retries >= STARTUP_RETRIES) {
      return new Error(`gave up after ${retries} attempts: ${cause && cause.message}`);
    }
    return Math.min(100 + retries * 50, 1000);
  };
  const pubClient = createClient({ url: REDIS_URL, socket: { reconnectStrategy } });
  const subClient = pubClient.duplicate();
  for (const [name, client] of [["pub", pubClient], ["sub", subClient]]) {
    client.on("error", (err) => {
      if (connected) console.error(`socketio baseline: redis ${name} client: ${err.message}`);
    });
  }
  try {
    await Promise.all([pubClient.connect(), subClient.connect()]);
  } catch (err) {
    fail(`cannot connect to Redis at ${REDIS_URL}`, err);
  }
  connected = true;

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    transports: ["websocket"],
    perMessageDeflate: false,
    adapter: createAdapter(pubClient, subClient),
  });

  io.on("connection", (socket) => {
    socket.on("join", (room) => {
      if (typeof room !== "string" || room.length === 0) return;
      if (socket.data.room === room) return;
      if (socket.data.room !== undefined) socket.leave(socket.data.room);
      socket.data.room = room;
      socket.join(room);
    });
    socket.on("chat", (payload) => {
      const room = socket.data.room;
      if (room === undefined) return;
      io.to(room).emit("chat", payload);
    });
  });

  httpServer.on("error", (err) => fail(`cannot listen on ${HOST}:${PORT}`, err));
  httpServer.listen(PORT, HOST, () => {
    console.log(`listening ${httpServer.address().port}`);
  });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    // Bounded: whatever is still open after two seconds is dropped.
    setTimeout(() => process.exit(0), 2000).unref();
    io.close(() => {
      Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0));
    });
    console.error(`socketio baseline: ${signal}, stopping`);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err) => fail("startup", err));
