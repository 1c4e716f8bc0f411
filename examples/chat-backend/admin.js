// The chat's admin actions through roomrouter's server API (docs/hooks.md):
//
//   node admin.js announce <room> <text> [--key <idempotency key>]
//   node admin.js members <room>
//   node admin.js kick <room> <member>
//   node admin.js history <room> [--since <seq>] [--limit <n>]
//
// ROUTER_URL (http://127.0.0.1:8080) is a router; API_KEY one of its
// --api-key values (or its admin token; none when the router has neither).
// Prints the answer as JSON; exits 1 on a refusal.
import { randomUUID } from "node:crypto";

const router = (process.env.ROUTER_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const [command, room, ...rest] = process.argv.slice(2);
const flag = (name) => {
  const at = rest.indexOf("--" + name);
  return at >= 0 ? rest.splice(at, 2)[1] : undefined;
};

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (process.env.API_KEY) headers.authorization = "Bearer " + process.env.API_KEY;
  const res = await fetch(router + path, {
    method, headers, body: body && JSON.stringify(body), signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// A publish is retried with the same idempotency key: the room delivers it
// once however many attempts reached it (within 10 minutes, across moves).
async function announce(text, key) {
  const body = { body: text, event: "chat", idempotency_key: key };
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await call("POST", `/rooms/${encodeURIComponent(room)}/messages`, body);
      if (answer.status < 500 || attempt === 5) return answer;
    } catch (e) {
      if (attempt === 5) throw e; // no answer: the same key again is safe
    }
    await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
  }
}

const id = encodeURIComponent(room || "");
let answer;
switch (room ? command : undefined) {
  case "announce": {
    const key = flag("key") || randomUUID();
    answer = await announce(rest.join(" "), key);
    if (answer.status === 201) answer.body.idempotency_key = key;
    break;
  }
  case "members":
    answer = await call("GET", `/rooms/${id}/members`);
    break;
  case "kick":
    answer = await call("DELETE", `/rooms/${id}/members/${encodeURIComponent(rest[0] || "")}`);
    break;
  case "history": {
    const query = new URLSearchParams();
    for (const name of ["since", "limit"]) { const v = flag(name); if (v) query.set(name, v); }
    const qs = query.toString();
    answer = await call("GET", `/rooms/${id}/history${qs ? "?" + qs : ""}`);
    break;
  }
  default:
    console.error("usage: node admin.js announce|members|kick|history <room> …  (see the top of admin.js)");
    process.exit(2);
}
console.log(JSON.stringify({ status: answer.status, ...(answer.body && { body: answer.body }) }));
process.exit(answer.status < 300 ? 0 : 1);
