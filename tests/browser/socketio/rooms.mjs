// Several rooms at once with polling-only clients: in each room A emits
// "hello" (acked) 3 times and B receives them; no room sees another's.
// With `--spread`, every HTTP request goes through a local round-robin
// proxy over those base URLs (one per request, no keep-alive): a polling
// session's requests land on different routers, i.e. nothing is sticky.
//
// node rooms.mjs --room R1,http://node1,/i1/room/R1/socket.io --room …
// node rooms.mjs --spread http://router1,http://router2 --room R1,proxy,/room/R1/socket.io …

import { ack, connect, main, options, record, relay, until } from "./lib.mjs";

const opt = options({
  room: { type: "string", multiple: true },
  spread: { type: "string" },
});

main(async () => {
  const proxy = opt.spread ? await relay(opt.spread.split(",")) : null;
  const rooms = opt.room.map((spec) => {
    const [name, url, path] = spec.split(",");
    return { name, url: url === "proxy" ? proxy.url : url, path };
  });
  const polling = { transport: "polling" };
  const result = {};
  await Promise.all(
    rooms.map(async (room) => {
      const a = await connect(room.url, room.path, polling);
      const b = await connect(room.url, room.path, polling);
      const got = record(b, "hello");
      const acks = [];
      for (let i = 0; i < 3; i++) acks.push((await ack(a, "hello", room.name, i)).seq);
      await until(`B in ${room.name} got 3 events`, () => got.length >= 3);
      result[room.name] = { acks, got, transports: [a, b].map((s) => s.io.engine.transport.name) };
    }),
  );
  if (proxy) {
    const sids = proxy.seen.map((s) => s.sids);
    result.proxy = {
      requests: proxy.seen.map((s) => s.requests),
      // Sessions whose requests reached every target.
      everywhere: [...sids[0]].filter((sid) => sids.every((set) => set.has(sid))).length,
    };
  }
  return result;
});
