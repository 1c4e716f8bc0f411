// A live move under Socket.IO traffic, through one path that follows the
// room (the router's /room/{id}/socket.io): sender S (`--sender`
// transport) emits "tick" i with an ack every 20 ms, receiver A
// (`--receiver` transport) records what it gets. Once both are connected
// and a few ticks are acked, the script prints {"ready":true}: the test
// moves the room then. The script ends once both reconnected, S had 10
// more ticks acked after its reconnect and A got every acked tick.
//
// node move.mjs --url http://router --path /room/R/socket.io
//   [--sender default] [--receiver polling]

import { WAIT_MS, connect, main, options, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  sender: { type: "string", default: "default" },
  receiver: { type: "string", default: "polling" },
});

/** Bound on the move and both reconnects, once ready. */
const MOVE_MS = 20000;

main(async () => {
  const a = await connect(opt.url, opt.path, { transport: opt.receiver });
  const s = await connect(opt.url, opt.path, { transport: opt.sender });
  const log = { a: [], s: [] };
  for (const [k, socket] of Object.entries({ a, s })) {
    socket.on("disconnect", (reason) => log[k].push({ disconnect: reason }));
    socket.on("connect", () => log[k].push({ connect: socket.id, pid: socket._pid, recovered: socket.recovered }));
  }
  const got = [];
  a.on("tick", (...args) => got.push(args));
  // S hears from A once, so that it has an offset to recover from too.
  const heard = new Promise((resolve) => s.once("hello", resolve));
  await a.timeout(WAIT_MS).emitWithAck("hello");
  await heard;
  const before = { a: { id: a.id, pid: a._pid }, s: { id: s.id, pid: s._pid } };
  const sent = [];
  let i = 0;
  const timer = setInterval(() => {
    const entry = { i: i++ };
    sent.push(entry);
    s.timeout(WAIT_MS)
      .emitWithAck("tick", entry.i)
      .then(
        (answer) => Object.assign(entry, answer),
        (err) => (entry.lost = err.message),
      );
  }, 20);
  const reconnects = (k) => log[k].filter((e) => e.connect).length;
  await until("5 ticks acked", () => sent.filter((e) => e.seq).length >= 5);
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");

  await until("both clients reconnected", () => reconnects("a") >= 1 && reconnects("s") >= 1, MOVE_MS);
  const after = i;
  await until("10 ticks acked after S reconnected", () => sent.filter((e) => e.i >= after && e.seq).length >= 10);
  clearInterval(timer);
  await until("every tick answered", () => sent.every((e) => "seq" in e || "error" in e || "lost" in e));
  const acked = sent.filter((e) => e.seq);
  await until("A got every acked tick", () => {
    const seen = new Set(got.map((args) => args.at(-1)));
    return acked.every((e) => seen.has(String(e.seq)));
  });
  return {
    before,
    log,
    transports: { a: a.io.engine.transport.name, s: s.io.engine.transport.name },
    // The heartbeat the node announced in its open packet, ms.
    ping: { interval: a.io.engine._pingInterval, timeout: a.io.engine._pingTimeout },
    sent,
    got: got.map((args) => [args[0], Number(args.at(-1))]),
  };
});
