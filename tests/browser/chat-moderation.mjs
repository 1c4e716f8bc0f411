// The chat page of `router up` with the application's hooks on (the example
// backend, examples/chat-backend), in the system's Chromium: mallory is
// refused in Socket.IO mode (connect_error with the reason); nina (native)
// joins renamed `nina (guest)` and her padded message arrives trimmed at dan
// (Socket.IO); a message with a blocked word is marked not sent, with the
// reason, on the sender's page in both modes, and the other page never
// shows it; then each is kicked through the server API
// (DELETE /rooms/{id}/members/{member}): both pages say "removed from the
// room by the server" and do not come back.
// Usage: node chat-moderation.mjs <page url> <screenshot.png> <api key>
import { launch, textOf } from './lib.mjs';

const [url, screenshot, apiKey] = process.argv.slice(2);
if (!url || !screenshot || !apiKey) {
  console.error('usage: node chat-moderation.mjs <page url> <screenshot.png> <api key>');
  process.exit(2);
}
const browser = await launch();
const timeout = 15000;
const room = 'moderated';
const api = async (method, path) => {
  const res = await fetch(new URL(path, url), { method, headers: { authorization: `Bearer ${apiKey}` } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
};
const members = async () => (await api('GET', `/rooms/${room}/members`)).members;
// Waits for a chat line holding `text` on `page`; what it shows.
const lineOf = async (page, text) => {
  const handle = await page.waitForFunction((text) => {
    const line = [...document.querySelectorAll('#messages .msg')].find((m) => m.textContent.includes(text));
    if (!line || line.querySelector('.seq').textContent.includes('…')) return null;
    const part = (cls) => (line.querySelector(cls) || {}).textContent || null;
    return { seq: part('.seq'), from: part('.from'), text: part('.text'), why: part('.why'), failed: line.classList.contains('failed') };
  }, text, { timeout });
  return handle.jsonValue();
};
const count = (page, text) => page.evaluate((text) => [...document.querySelectorAll('#messages .msg')]
  .filter((m) => m.textContent.includes(text)).length, text);
const sysLine = (page, text) => page.waitForFunction((text) => [...document.querySelectorAll('#messages .sys')]
  .some((m) => m.textContent.includes(text)), text, { timeout });
const send = async (page, text) => {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
};
const open = async (name, protocol) => {
  const page = await (await browser.newContext({ viewport: { width: 900, height: 620 } })).newPage();
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  const u = new URL(url);
  u.searchParams.set('protocol', protocol);
  u.hash = `room=${room}`;
  await page.goto(u.toString());
  await page.fill('#name', name);
  await page.click('#join');
  return page;
};
const errors = [];
try {
  const nina = await open('nina', 'native');
  await nina.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout });

  // The join hook refuses mallory: Socket.IO's connect_error carries the reason.
  const mallory = await open('mallory', 'socketio');
  await sysLine(mallory, 'connect_error: banned (join_refused)');
  if ((await textOf(mallory, '#status')) !== 'refused') throw new Error('mallory is not shown as refused');

  const dan = await open('dan', 'socketio');
  await dan.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout });
  await nina.waitForFunction(() => document.querySelector('#members').textContent.trim() === '2', null, { timeout });

  // Renamed by the join hook, trimmed by the publish hook.
  await send(nina, '   hello, trimmed   ');
  const ninaLine = await lineOf(nina, 'hello, trimmed');
  if (ninaLine.from !== 'nina (guest)' || ninaLine.text !== 'hello, trimmed') {
    throw new Error(`nina's own line: ${JSON.stringify(ninaLine)}`);
  }
  const danSaw = await lineOf(dan, 'hello, trimmed');
  if (danSaw.text !== 'hello, trimmed' || danSaw.seq !== ninaLine.seq) throw new Error(`dan saw ${JSON.stringify(danSaw)}`);

  // Rejected by the publish hook: not sent, with the reason; nobody else sees it.
  const reason = 'not sent: message contains a blocked word';
  await send(nina, 'buy spam from nina');
  const ninaRejected = await lineOf(nina, 'buy spam from nina');
  if (!ninaRejected.failed || ninaRejected.why !== reason || ninaRejected.seq !== '#✗') {
    throw new Error(`nina's rejected line: ${JSON.stringify(ninaRejected)}`);
  }
  await send(dan, 'more spam from dan');
  const danRejected = await lineOf(dan, 'more spam from dan');
  if (!danRejected.failed || danRejected.why !== reason) throw new Error(`dan's rejected line: ${JSON.stringify(danRejected)}`);
  await send(dan, 'fine from dan');
  await lineOf(nina, 'fine from dan');
  await send(nina, 'fine from nina');
  await lineOf(dan, 'fine from nina');
  if ((await count(dan, 'buy spam')) + (await count(nina, 'more spam')) !== 0) {
    throw new Error('a rejected message reached the other member');
  }
  await nina.screenshot({ path: screenshot });

  // Kicked through the server API: removed, and no reconnect.
  const list = await members();
  const byName = (name) => list.find((m) => m.name === name);
  if (!byName('nina (guest)') || !byName('dan (guest)')) throw new Error(`members: ${JSON.stringify(list)}`);
  await api('DELETE', `/rooms/${room}/members/${byName('nina (guest)').member}`);
  await sysLine(nina, 'removed from the room by the server');
  await api('DELETE', `/rooms/${room}/members/${byName('dan (guest)').member}`);
  await sysLine(dan, 'removed from the room by the server');
  await new Promise((r) => setTimeout(r, 1500)); // a reconnect would have happened by now
  for (const [name, page] of [['nina', nina], ['dan', dan]]) {
    if ((await textOf(page, '#status')) !== 'closed') throw new Error(`${name} is not shown as closed`);
  }
  const after = await members();
  if (after.length !== 0) throw new Error(`someone came back: ${JSON.stringify(after)}`);
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log(JSON.stringify({ ok: true, renamed: ninaLine.from, trimmed_seq: ninaLine.seq, rejected: reason }));
} finally {
  await browser.close();
}
