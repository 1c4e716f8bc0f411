// Two people chat through the page that `router up` serves, in the system's
// Chromium: one creates a room, the other opens the same URL, both see the
// hosting node and the member count, messages go both ways.
// Usage: node chat.mjs <page url> <screenshot.png>
import { launch, textOf } from './lib.mjs';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node chat.mjs <page url> <screenshot.png>');
  process.exit(2);
}
const browser = await launch();
const timeout = 15000;
try {
  const ann = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await ann.goto(url);
  await ann.fill('#room', 'lobby');
  await ann.fill('#name', 'ann');
  await ann.click('#join');
  await ann.waitForFunction(() => document.querySelector('#members').textContent.trim() === '1', null, { timeout });
  const node = await textOf(ann, '#node');
  if (!/^i\d+$/.test(node)) throw new Error(`hosting node shown as ${JSON.stringify(node)}`);

  // The second person follows the URL the first one has (#room=lobby).
  await bob.goto(ann.url());
  if ((await bob.inputValue('#room')) !== 'lobby') throw new Error('the room is not taken from the URL');
  await bob.fill('#name', 'bob');
  await bob.click('#join');
  for (const page of [ann, bob]) {
    await page.waitForFunction(() => document.querySelector('#members').textContent.trim() === '2', null, { timeout });
  }
  if ((await textOf(bob, '#node')) !== node) throw new Error('the two people see different nodes');

  await ann.fill('#text', 'hello from ann');
  await ann.press('#text', 'Enter');
  await bob.fill('#text', 'hi ann, bob here');
  await bob.click('#send');
  const has = (text) => [...document.querySelectorAll('#messages .msg')].some((m) => m.textContent.includes(text));
  for (const page of [ann, bob]) {
    await page.waitForFunction(has, 'hello from ann', { timeout });
    await page.waitForFunction(has, 'bob here', { timeout });
  }
  await ann.screenshot({ path: screenshot });
  console.log(JSON.stringify({ ok: true, node, members: 2 }));
} finally {
  await browser.close();
}
