// One room, two protocols: native member N and Socket.IO member S (over
// `--transport`). S emits "chat" (acked); N sends a plain body, a body of
// the event shape, and one with a `_binary` argument. Reports what each
// side got: N's frames after its welcome, S's events with their arguments
// (binary as {hex}).
//
// node native.mjs --url http://host:port --path /iN/room/R/socket.io
//   --native ws://host:port/iN/room/R [--transport websocket|polling|default]

import { ack, connect, hex, main, native, options, record, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  native: { type: "string" },
  transport: { type: "string", default: "default" },
});

main(async () => {
  const n = await native(opt.native);
  const s = await connect(opt.url, opt.path, { transport: opt.transport, auth: { name: "sio" } });
  const events = [];
  s.onAny((event, ...args) => events.push([event, ...args.map((a) => (hex(a) ? { hex: hex(a) } : a))]));
  const acked = await ack(s, "chat", "from socket.io", { x: 1 });
  await until("N got the chat", () => n.messages().length >= 1);
  n.send({ text: "from native" });
  n.send({ event: "shout", args: [1, "two", null] });
  n.send({ event: "bin", args: [{ _binary: "AQID" }] });
  await until("N got its own 3 messages back", () => n.messages().length >= 4);
  await until("S got 3 events", () => events.length >= 3);
  // A native member sees its own messages; S never gets its own chat.
  return { welcome: n.welcome, sid: s.id, acked, atNative: n.frames, atSocketIo: events };
});
