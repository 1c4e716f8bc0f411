// The chat page of `router up` in both modes, in the system's Chromium: ann
// joins room `mixed` over the native protocol, bob opens the page with
// `?protocol=socketio` and joins over socket.io-client (the vendored bundle
// the router serves). They chat both ways; bob's own line shows the seq from
// his ack, the same seq ann sees; ann's message reaches bob as the event
// chat(text) with its seq as the offset. Bob's transport is dropped: the
// page says the reconnect was recovered and gets the next message once.
// Then the room is deleted: bob's page says the server removed him from it.
// Usage: node chat-socketio.mjs <page url> <screenshot.png> <admin token>
import { launch, textOf } from './lib.mjs';

const [url, screenshot, adminToken] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node chat-socketio.mjs <page url> <screenshot.png>');
  process.exit(2);
}
const browser = await launch();
const timeout = 15000;
// The seq shown on the first chat line holding `text` once it is a number
// (a Socket.IO sender's own line shows `#…` until the ack).
const seqOf = async (page, text) => {
  const handle = await page.waitForFunction((text) => {
    const line = [...document.querySelectorAll('#messages .msg')].find((m) => m.textContent.includes(text));
    const seq = line && line.querySelector('.seq').textContent;
    return seq && /^#\d+$/.test(seq) ? Number(seq.slice(1)) : null;
  }, text, { timeout });
  return handle.jsonValue();
};
const errors = [];
try {
  const ann = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext({ viewport: { width: 900, height: 620 } })).newPage();
  for (const page of [ann, bob]) page.on('pageerror', (e) => errors.push(e.message));

  await ann.goto(url);
  await ann.fill('#room', 'mixed');
  await ann.fill('#name', 'ann');
  await ann.click('#join');
  await ann.waitForFunction(() => document.querySelector('#members').textContent.trim() === '1', null, { timeout });
  const node = await textOf(ann, '#node');

  const sio = new URL(url);
  sio.searchParams.set('protocol', 'socketio');
  sio.hash = 'room=mixed';
  await bob.goto(sio.toString());
  if ((await bob.inputValue('#protocol')) !== 'socketio') throw new Error('?protocol=socketio does not pick the mode');
  if ((await bob.inputValue('#room')) !== 'mixed') throw new Error('the room is not taken from the URL');
  await bob.fill('#name', 'bob');
  await bob.click('#join');
  await bob.waitForFunction(() => document.querySelector('#status').textContent === 'connected', null, { timeout });
  await bob.waitForFunction((node) => document.querySelector('#node').textContent === node, node, { timeout });
  if (!(await bob.evaluate(() => typeof io === 'function' && typeof io.Manager === 'function'))) {
    throw new Error('the page has no socket.io-client');
  }
  // A Socket.IO member is a member for the native side too.
  await ann.waitForFunction(() => document.querySelector('#members').textContent.trim() === '2', null, { timeout });

  await bob.fill('#text', 'hello from socket.io');
  await bob.press('#text', 'Enter');
  const ackSeq = await seqOf(bob, 'hello from socket.io');
  const annSaw = await seqOf(ann, 'hello from socket.io');
  if (annSaw !== ackSeq) throw new Error(`bob's ack says #${ackSeq}, ann sees #${annSaw}`);
  const from = await ann.evaluate(() => [...document.querySelectorAll('#messages .msg')]
    .find((m) => m.textContent.includes('hello from socket.io')).querySelector('.from').textContent);
  if (from !== 'bob') throw new Error(`ann sees the Socket.IO message from ${JSON.stringify(from)}`);

  await ann.fill('#text', 'hi bob, native here');
  await ann.click('#send');
  const nativeSeq = await seqOf(ann, 'hi bob, native here');
  const bobSaw = await seqOf(bob, 'hi bob, native here');
  if (bobSaw !== nativeSeq) throw new Error(`ann's message is #${nativeSeq}, bob sees #${bobSaw}`);
  // Bob got chat(text, offset): the text alone, not the native body.
  const bobLine = await bob.evaluate(() => [...document.querySelectorAll('#messages .msg')]
    .find((m) => m.textContent.includes('native here')).querySelector('.text').textContent);
  if (bobLine !== 'hi bob, native here') throw new Error(`bob's page shows ${JSON.stringify(bobLine)}`);

  // A dropped transport: socket.io-client reconnects by itself and recovers.
  await bob.evaluate(() => sio.io.engine.close());
  await bob.waitForFunction(() => [...document.querySelectorAll('#messages .sys')]
    .some((m) => m.textContent.endsWith(': recovered, nothing missed')), null, { timeout });
  await ann.fill('#text', 'welcome back');
  await ann.click('#send');
  const backSeq = await seqOf(bob, 'welcome back');
  const copies = await bob.evaluate(() => [...document.querySelectorAll('#messages .msg')]
    .filter((m) => m.textContent.includes('welcome back')).length);
  if (copies !== 1) throw new Error(`bob sees "welcome back" ${copies} times`);

  await bob.screenshot({ path: screenshot });

  // Deleting the room sends DISCONNECT: socket.io-client does not come back.
  const del = await fetch(new URL('/rooms/mixed', url), {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${adminToken}` },
  });
  if (!del.ok) throw new Error(`DELETE /rooms/mixed: ${del.status}`);
  await bob.waitForFunction(() => [...document.querySelectorAll('#messages .sys')]
    .some((m) => m.textContent === 'removed from the room by the server'), null, { timeout });
  if ((await textOf(bob, '#status')) !== 'closed') throw new Error('bob is not shown as closed');
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log(JSON.stringify({ ok: true, node, ack_seq: ackSeq, native_seq: nativeSeq, after_recovery_seq: backSeq }));
} finally {
  await browser.close();
}
