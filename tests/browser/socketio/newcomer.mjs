// Member ids across a move: A (polling) and S (WebSocket) each have an
// offset; both hold their reconnection; {"ready":true} is printed and the
// test moves the room. Then a newcomer C joins the new owner first, S
// recovers and emits "m" 1..3 (A misses them), A recovers, S emits "m" 4
// live. Reports ids, `recovered`, and what A received.
//
// node newcomer.mjs --url http://router --path /room/R/socket.io

import { ack, connect, main, next, options, record, resume, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
});

main(async () => {
  const a = await connect(opt.url, opt.path, { transport: "polling" });
  const s = await connect(opt.url, opt.path, { transport: "websocket" });
  const atA = record(a, "m");
  const heard = next(s, "hello");
  await ack(a, "hello");
  await heard;
  await ack(s, "m", 0);
  await until("A got m 0", () => atA.length === 1);
  const before = { a: { id: a.id, pid: a._pid }, s: { id: s.id, pid: s._pid } };
  for (const socket of [a, s]) socket.io.reconnection(false);
  const dropped = [a, s].map((socket) => next(socket, "disconnect", "disconnect by the move"));
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");

  const reasons = (await Promise.all(dropped)).map(([reason]) => reason);
  const c = await connect(opt.url, opt.path, { transport: "websocket" });
  await resume(s);
  const after = { s: { id: s.id, pid: s._pid, recovered: s.recovered } };
  for (let i = 1; i <= 3; i++) await ack(s, "m", i);
  await resume(a);
  after.a = { id: a.id, pid: a._pid, recovered: a.recovered };
  await ack(s, "m", 4);
  await until("A got m 4", () => atA.length > 0 && atA.at(-1)[0] === 4);
  return { before, reasons, newcomer: c.id, after, atA };
});
