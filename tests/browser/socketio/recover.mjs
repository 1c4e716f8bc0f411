// Connection state recovery after a dropped transport. B emits "m" 0; A
// emits 3 "own" events; A's transport is closed (reconnection held); B
// emits "m" 1..5; A reconnects with its pid and offset; B emits "m" 6
// live. Reports every "m" and "own" A received, `recovered`, and A's id
// and pid before and after.
//
// node recover.mjs --url http://host:port --path /iN/room/R/socket.io
//   [--transport websocket|polling|default]

import { ack, connect, drop, main, options, record, resume, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  transport: { type: "string", default: "websocket" },
});

main(async () => {
  const how = { transport: opt.transport };
  const a = await connect(opt.url, opt.path, how);
  const b = await connect(opt.url, opt.path, how);
  const atA = record(a, "m");
  const ownAtA = record(a, "own");
  const ownAtB = record(b, "own");
  const acks = [await ack(b, "m", 0)];
  await until("A got m 0", () => atA.length === 1);
  const ownAcks = [];
  for (let i = 0; i < 3; i++) ownAcks.push(await ack(a, "own", i));
  await until("B got A's 3 events", () => ownAtB.length === 3);
  const before = { id: a.id, pid: a._pid, recovered: a.recovered };

  const reason = await drop(a);
  for (let i = 1; i <= 5; i++) acks.push(await ack(b, "m", i));
  await resume(a);
  const after = { id: a.id, pid: a._pid, recovered: a.recovered };
  await until("A got the 5 missed events", () => atA.length >= 6);
  acks.push(await ack(b, "m", 6));
  await until("A got the live event after them", () => atA.length >= 7 && atA.at(-1)[0] === 6);
  return {
    reason,
    transport: a.io.engine.transport.name,
    before,
    after,
    acks: acks.map((x) => x.seq),
    ownAcks: ownAcks.map((x) => x.seq),
    atA,
    ownAtA,
  };
});
