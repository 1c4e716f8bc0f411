// Two clients in one room over one transport setting: A emits `count`
// "chat" events with acks, B receives them (with the offset as the last
// argument); B answers one "reply" that A receives. With `--transport
// default`, both first wait for the upgrade to WebSocket.
//
// node exchange.mjs --url http://host:port --path /iN/room/R/socket.io
//   [--transport websocket|polling|default] [--nsp /room/R] [--count 5]

import { ack, connect, main, options, record, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  transport: { type: "string", default: "default" },
  nsp: { type: "string", default: "/" },
  count: { type: "string", default: "5" },
});

main(async () => {
  const how = { transport: opt.transport, nsp: opt.nsp };
  const a = await connect(opt.url, opt.path, { ...how, auth: { name: "alice" } });
  const b = await connect(opt.url, opt.path, { ...how, auth: { name: "bob" } });
  const first = { a: a.firstTransport, b: b.firstTransport };
  if (opt.transport === "default") {
    await until("both clients upgraded to websocket", () =>
      [a, b].every((s) => s.io.engine.transport.name === "websocket"),
    );
  }
  const atA = record(a, "chat");
  const atB = record(b, "chat");
  const repliesAtA = record(a, "reply");
  const count = Number(opt.count);
  const acks = [];
  for (let i = 0; i < count; i++) {
    acks.push(await ack(a, "chat", "hello", i, { n: i }));
  }
  await until(`B received ${count} chat events`, () => atB.length >= count);
  const replyAck = await ack(b, "reply", "hi alice");
  await until("A received the reply", () => repliesAtA.length >= 1);
  return {
    ids: { a: a.id, b: b.id },
    first,
    transports: { a: a.io.engine.transport.name, b: b.io.engine.transport.name },
    acks,
    atB,
    atA,
    replyAck,
    repliesAtA,
  };
});
