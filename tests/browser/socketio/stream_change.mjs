// Recovery refused when the stream is not the room's:
// 1. A forged pid (another stream, A's member id) after a dropped
//    transport: B's events meanwhile are not replayed.
// 2. The room deleted (DELETE /rooms/{id} on the router) and created
//    again: A reconnects with the old stream's pid and offset.
// Reports `recovered`, ids and what A received ("m" events) in each part.
//
// node stream_change.mjs --url http://host:port --path /iN/room/R/socket.io
//   --router http://router --room R

import { ack, connect, drop, main, next, options, record, resume, until, connected } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  router: { type: "string" },
  room: { type: "string" },
});

async function http(method, path, body) {
  const res = await fetch(opt.router + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return res.status;
}

main(async () => {
  const a = await connect(opt.url, opt.path, { transport: "websocket" });
  const b = await connect(opt.url, opt.path, { transport: "websocket" });
  const atA = record(a, "m");
  await ack(b, "m", 0);
  await until("A got m 0", () => atA.length === 1);

  // 1. A forged pid.
  const forged = { before: { id: a.id, pid: a._pid } };
  await drop(a);
  const [, member] = a._pid.split("~");
  a._pid = `0000000000000000~${member}`;
  await ack(b, "m", 1);
  await ack(b, "m", 2);
  await resume(a);
  forged.after = { id: a.id, pid: a._pid, recovered: a.recovered };
  await ack(b, "m", 3);
  await until("A got m 3", () => atA.at(-1)[0] === 3);
  forged.atA = atA.splice(0);

  // 2. The room deleted and created again.
  const deleted = { before: { id: a.id, pid: a._pid } };
  const reasons = [next(a, "disconnect"), next(b, "disconnect")];
  deleted.deleteStatus = await http("DELETE", `/rooms/${opt.room}`);
  deleted.reasons = (await Promise.all(reasons)).map(([reason]) => reason);
  deleted.createStatus = await http("POST", "/rooms", { id: opt.room });
  b.connect();
  await connected(b, "B connecting to the new room");
  deleted.firstAck = await ack(b, "m", 4);
  a.connect();
  await connected(a, "A connecting to the new room");
  deleted.after = { id: a.id, pid: a._pid, recovered: a.recovered };
  deleted.bPid = b._pid;
  await ack(b, "m", 5);
  await until("A got m 5", () => atA.length >= 1 && atA.at(-1)[0] === 5);
  deleted.atA = atA;
  return { forged, deleted };
});
