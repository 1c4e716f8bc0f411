// `count` events from one client (WebSocket) as fast as it can emit them,
// each with an ack, to a receiver on `--receiver` transport: what the
// receiver got, in arrival order, as [index, offset] pairs, and the acks.
//
// node order.mjs --url http://host:port --path /iN/room/R/socket.io
//   --receiver websocket|polling [--count 500]

import { connect, main, options, record, until, WAIT_MS } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  receiver: { type: "string" },
  count: { type: "string", default: "500" },
});

main(async () => {
  const count = Number(opt.count);
  const receiver = await connect(opt.url, opt.path, { transport: opt.receiver });
  const sender = await connect(opt.url, opt.path, { transport: "websocket" });
  const got = record(receiver, "n");
  // Emitted back to back: the acks are awaited together.
  const acks = await Promise.all(
    Array.from({ length: count }, (_, i) => sender.timeout(WAIT_MS).emitWithAck("n", i)),
  );
  await until(`the receiver got ${count} events`, () => got.length >= count);
  return {
    receiver: receiver.io.engine.transport.name,
    acked: acks.map((a) => a.seq),
    // [index, offset]: the offset is the last argument.
    got: got.map((args) => [args[0], args[args.length - 1]]),
    arity: [...new Set(got.map((args) => args.length))],
  };
});
