// A private room: the connect_error of each refused attempt (no token, a
// tampered one, another room's, an unknown namespace) as {message, data},
// then two members with valid tokens (one in `auth`, one in the query)
// exchanging an event.
//
// node private.mjs --url http://host:port --path /iN/room/R/socket.io
//   --token T --tampered T2 --other T3

import { ack, connect, main, next, options, refusal } from "./lib.mjs";

const opt = options({
  url: { type: "string" },
  path: { type: "string" },
  token: { type: "string" },
  tampered: { type: "string" },
  other: { type: "string" },
});

main(async () => {
  const ws = { transport: "websocket" };
  const refused = {
    none: await refusal(opt.url, opt.path, ws),
    noneName: await refusal(opt.url, opt.path, { ...ws, auth: { name: "eve" } }),
    tampered: await refusal(opt.url, opt.path, { ...ws, auth: { token: opt.tampered } }),
    other: await refusal(opt.url, opt.path, { ...ws, auth: { token: opt.other } }),
    namespace: await refusal(opt.url, opt.path, { ...ws, nsp: "/elsewhere", auth: { token: opt.token } }),
    pollingNone: await refusal(opt.url, opt.path, { transport: "polling" }),
  };
  const a = await connect(opt.url, opt.path, { ...ws, auth: { token: opt.token } });
  const b = await connect(opt.url, opt.path, { transport: "polling", query: { token: opt.token } });
  const got = next(b, "chat");
  const acked = await ack(a, "chat", "secret");
  return { refused, acked, atB: await got };
});
