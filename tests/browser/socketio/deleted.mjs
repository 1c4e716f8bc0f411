// The room deleted under two clients (A WebSocket, B polling): each gets
// "disconnect" with its reason, and neither tries to reconnect within
// `--quiet` ms (reconnection is on, with a 50 ms delay); a new client
// cannot connect to the path any more.
//
// node deleted.mjs --url http://host:port --path /iN/room/R/socket.io
//   --router http://router --room R [--quiet 500]

import { connect, main, next, options, refusal } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  router: { type: "string" },
  room: { type: "string" },
  quiet: { type: "string", default: "500" },
});

main(async () => {
  const clients = {
    a: await connect(opt.url, opt.path, { transport: "websocket" }),
    b: await connect(opt.url, opt.path, { transport: "polling" }),
  };
  const attempts = { a: 0, b: 0 };
  const connects = { a: 0, b: 0 };
  const disconnects = {};
  for (const [k, s] of Object.entries(clients)) {
    s.io.on("reconnect_attempt", () => attempts[k]++);
    s.on("connect", () => connects[k]++);
    disconnects[k] = next(s, "disconnect");
  }
  const res = await fetch(`${opt.router}/rooms/${opt.room}`, { method: "DELETE" });
  const reasons = {};
  for (const k of Object.keys(clients)) [reasons[k]] = await disconnects[k];
  // Nothing to wait for: a client that would come back does so within
  // its 50 ms reconnection delay.
  await new Promise((r) => setTimeout(r, Number(opt.quiet)));
  const active = Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, s.active]));
  const late = await refusal(opt.url, opt.path, { transport: "websocket" });
  return { deleteStatus: res.status, reasons, attempts, connects, active, late };
});
