// The room deleted under two clients: A over WebSocket, B over polling
// through a local relay that holds each of B's polls 300 ms, so that the
// deletion finds B between two polls (its DISCONNECT is queued, not
// written to a waiting poll). B has just received an event when the room
// is deleted. Reports every "disconnect" reason of each, and whether
// either tried to reconnect within `--quiet` ms (reconnection is on, with
// a 50 ms delay); a new client then tries the path.
//
// node deleted.mjs --url http://host:port --path /iN/room/R/socket.io
//   --router http://router --room R [--quiet 500]

import { ack, connect, main, next, options, record, refusal, relay, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  router: { type: "string" },
  room: { type: "string" },
  quiet: { type: "string", default: "500" },
});

main(async () => {
  const held = await relay([opt.url], { holdPollsMs: 300 });
  const clients = {
    a: await connect(opt.url, opt.path, { transport: "websocket" }),
    b: await connect(held.url, opt.path, { transport: "polling" }),
  };
  const attempts = { a: 0, b: 0 };
  const connects = { a: 0, b: 0 };
  const reasons = { a: [], b: [] };
  for (const [k, s] of Object.entries(clients)) {
    s.io.on("reconnect_attempt", () => attempts[k]++);
    s.on("connect", () => connects[k]++);
    s.on("disconnect", (reason) => reasons[k].push(reason));
  }
  const atB = record(clients.b, "x");
  await ack(clients.a, "x");
  await until("B got x", () => atB.length === 1);
  const res = await fetch(`${opt.router}/rooms/${opt.room}`, { method: "DELETE" });
  await until("both clients were disconnected", () => reasons.a.length > 0 && reasons.b.length > 0);
  // Nothing to wait for: a client that would come back does so within
  // its 50 ms reconnection delay.
  await new Promise((r) => setTimeout(r, Number(opt.quiet)));
  const active = Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, s.active]));
  const late = await refusal(opt.url, opt.path, { transport: "websocket" });
  return { deleteStatus: res.status, reasons, attempts, connects, active, late };
});
