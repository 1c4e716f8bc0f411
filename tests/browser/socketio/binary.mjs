// Binary arguments: A emits "file" with a Buffer, a Uint8Array nested in an
// object and a Buffer in an array, then "big" with 40,000 bytes. B
// (WebSocket) and C (polling: base64 payloads) are Socket.IO members, N a
// native member. Binary values are reported as hex (the big one as its
// SHA-256), and N's message bodies as they came.
//
// node binary.mjs --url http://host:port --path /iN/room/R/socket.io
//   --native ws://host:port/iN/room/R

import { createHash } from "node:crypto";
import { ack, connect, hex, main, native, options, record, until } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  native: { type: "string" },
});

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** A received argument with every binary value as `{hex}`. */
function plain(value) {
  if (value instanceof Uint8Array) return { hex: hex(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

main(async () => {
  const a = await connect(opt.url, opt.path, { transport: "websocket" });
  const b = await connect(opt.url, opt.path, { transport: "websocket" });
  const c = await connect(opt.url, opt.path, { transport: "polling" });
  const n = await native(opt.native);
  const members = { b, c };
  const files = {};
  const bigs = {};
  for (const [k, s] of Object.entries(members)) {
    files[k] = record(s, "file");
    bigs[k] = record(s, "big");
  }
  const big = Buffer.alloc(40000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) % 256;

  const fileAck = await ack(
    a,
    "file",
    Buffer.from([0, 1, 2, 255]),
    { name: "x.bin", data: new Uint8Array([9, 8, 7]) },
    [1, Buffer.from("hi")],
  );
  const bigAck = await ack(a, "big", big);
  await until("B and C got both events", () =>
    Object.keys(members).every((k) => files[k].length === 1 && bigs[k].length === 1),
  );
  await until("N got both messages", () => n.messages().length >= 2);
  const [nFile, nBig] = n.messages();
  const nBigBytes = Buffer.from(nBig.body.args[0]._binary, "base64");
  const result = {
    acks: [fileAck, bigAck],
    sent: { bigSha: sha256(big) },
    native: {
      file: { seq: nFile.seq, from: nFile.from, body: nFile.body },
      big: {
        seq: nBig.seq,
        event: nBig.body.event,
        arity: nBig.body.args.length,
        sha: sha256(nBigBytes),
        length: nBigBytes.length,
      },
      aId: a.id,
    },
  };
  for (const [k, s] of Object.entries(members)) {
    const [bigArgs] = bigs[k];
    result[k] = {
      transport: s.io.engine.transport.name,
      file: plain(files[k][0]),
      big: {
        isBuffer: Buffer.isBuffer(bigArgs[0]),
        length: bigArgs[0].length,
        sha: sha256(bigArgs[0]),
        rest: bigArgs.slice(1),
      },
    };
  }
  return result;
});
