// The operator dashboard (/admin) in the system's Chromium, against a cluster
// the Rust test (tests/tests/admin_browser.rs) runs: a wrong token is refused;
// the right one shows 3 nodes and the chart; a 4th node (started by the test
// when this script prints WAITING_FOR_NODE_4) appears; a rebalance is planned,
// confirmed and followed to done; a node is drained; a room is searched, its
// member and messages shown, and the member kicked; the events show it all.
// Screenshots of each view go to <screenshot dir>/admin-*.png.
// Usage: node admin.mjs <dashboard url> <screenshot dir> <admin token> <room> <drain node>
import { launch } from './lib.mjs';

const [url, shots, token, room, drainNode] = process.argv.slice(2);
if (!url || !shots || !token || !room || !drainNode) {
  console.error('usage: node admin.mjs <dashboard url> <screenshot dir> <admin token> <room> <drain node>');
  process.exit(2);
}
const browser = await launch();
const timeout = 20000;
const errors = [];
const fail = (why) => { throw new Error(why); };
const shot = (page, name) => page.screenshot({ path: `${shots}/admin-${name}.png`, fullPage: true });
const rows = (page, sel) => page.$$eval(sel, (trs) => trs.map((tr) => tr.getAttribute('data-node') || tr.getAttribute('data-member')));
const waitFor = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout });
// Confirms the dialog an action opened, checking it names `what`.
const confirm = async (page, what) => {
  await page.waitForSelector('#confirm[open]', { timeout });
  const text = await page.textContent('#confirmText');
  if (!text.includes(what)) fail(`the confirmation says "${text}", not ${what}`);
  await page.click('#confirmOk');
  await page.waitForSelector('#confirm', { state: 'hidden', timeout });
};
const followToDone = async (page, kind) => {
  await waitFor(page, (kind) => {
    const op = document.querySelector('#opState');
    return op && op.dataset.kind === kind && ['done', 'failed'].includes(op.dataset.state);
  }, kind);
  const state = await page.$eval('#opState', (e) => ({ state: e.dataset.state, text: e.textContent }));
  if (state.state !== 'done') fail(`operation ended: ${state.text}`);
  return state.text;
};
const result = {};
try {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 820 } })).newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);

  // A wrong token is refused and shows nothing of the cluster.
  await page.waitForSelector('#loginForm', { timeout });
  await page.fill('#token', 'not-the-token-0123');
  await page.click('#loginForm button');
  await waitFor(page, () => document.querySelector('#loginError').textContent.includes('Refused'));
  if (await page.isVisible('#app')) fail('the dashboard is shown after a wrong token');
  if (await page.evaluate(() => sessionStorage.length) !== 0) fail('a refused token was kept');
  result.refused = (await page.textContent('#loginError')).trim();
  await shot(page, 'login');

  // The right one: 3 nodes in the table and 3 bars in the chart.
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#app:not([hidden])', { timeout });
  if (page.url().includes(token)) fail('the token is in the URL');
  await waitFor(page, () => document.querySelectorAll('#nodes tbody tr').length === 3
    && document.querySelectorAll('#chart g.node').length === 3);
  result.nodes_before = await rows(page, '#nodes tbody tr');

  // A 4th node appears by itself, with its live figures.
  console.log('WAITING_FOR_NODE_4');
  await waitFor(page, () => document.querySelectorAll('#nodes tbody tr').length === 4
    && document.querySelector('#chart g.node[data-node="i4"]')
    && !document.querySelector('#nodes tbody tr[data-node="i4"] .noanswer'));
  // Live rates: the test keeps one member chatting.
  await waitFor(page, () => [...document.querySelectorAll('#nodes tbody tr')]
    .some((tr) => Number(tr.cells[6].textContent) > 0 && Number(tr.cells[7].textContent) > 0));
  result.nodes_after = await rows(page, '#nodes tbody tr');
  result.imbalance = (await page.textContent('#imbalance')).trim();
  await shot(page, 'cluster');

  // The plan first, then the run with its progress.
  await page.click('nav .tab[data-view=operations]');
  await page.click('#planRebalance');
  await page.waitForSelector('#planTable tbody tr[data-node="i4"]', { timeout });
  const planned = await page.$eval('#planTable tbody tr[data-node="i4"]', (tr) => [...tr.cells].map((c) => c.textContent));
  if (planned[1] !== '0' || !(Number(planned[2]) > 0)) fail(`the plan for i4: ${planned}`);
  result.plan = (await page.textContent('#planSummary')).trim();
  await page.click('#runRebalance');
  await confirm(page, 'Run the rebalance');
  result.rebalance = await followToDone(page, 'rebalance');
  const moved = Number(/moved (\d+) of (\d+)/.exec(result.rebalance)?.[1]);
  if (!(moved >= 1) || !result.rebalance.includes(`moved ${planned[2]} of ${planned[2]}`)) {
    fail(`rebalance progress: ${result.rebalance} (plan ${planned})`);
  }
  await waitFor(page, () => document.querySelector('#operations tbody tr'));
  await shot(page, 'rebalance');

  // Drain a node from the cluster view; it ends draining and empty.
  await page.click('nav .tab[data-view=cluster]');
  await page.click(`#nodes button.drain[data-node="${drainNode}"]`);
  await confirm(page, `Drain ${drainNode}`);
  result.drain = await followToDone(page, 'drain');
  await page.click('nav .tab[data-view=cluster]');
  await waitFor(page, (n) => {
    const tr = document.querySelector(`#nodes tbody tr[data-node="${n}"]`);
    return tr && tr.cells[1].textContent === 'draining' && tr.cells[3].textContent === '0'
      && tr.querySelector('button.undrain');
  }, drainNode);
  await shot(page, 'drain');

  // A room: search it, see its record, member and messages, kick the member.
  await page.click('nav .tab[data-view=rooms]');
  await page.fill('#roomSearch', 'no-such-room');
  await page.click('#searchForm button');
  await waitFor(page, () => document.querySelector('#roomError')?.textContent.includes('No room'));
  // By prefix: no room is called that, the ones starting with it are listed.
  const prefix = room.split('-')[0];
  await page.fill('#roomSearch', prefix);
  await page.press('#roomSearch', 'Enter');
  await waitFor(page, (p) => document.querySelector('#roomError')?.textContent.includes(`No room ${p}`), prefix);
  await waitFor(page, (r) => [...document.querySelectorAll('#roomList tbody td button')].some((b) => b.textContent === r), room);
  const listed = await page.$$eval('#roomList tbody td button', (bs) => bs.map((b) => b.textContent));
  if (!listed.every((r) => r.startsWith(prefix))) fail(`search ${prefix} listed ${listed}`);
  await page.click(`#roomList tbody td button >> text="${room}"`);
  await page.waitForSelector('#roomTitle', { timeout });
  if ((await page.textContent('#roomTitle')) !== `Room ${room}`) fail(`opened ${await page.textContent('#roomTitle')}`);
  result.owner = await page.textContent('#roomOwner');
  await waitFor(page, () => document.querySelectorAll('#members tbody tr').length === 1
    && document.querySelectorAll('#history li').length >= 1);
  const member = await page.$eval('#members tbody tr', (tr) => tr.dataset.member);
  result.history = await page.$$eval('#history li', (lis) => lis.map((li) => li.textContent));
  // The owner's room list, one page.
  await page.selectOption('#browseNode', result.owner);
  await page.click('#browseForm button');
  await waitFor(page, (r) => [...document.querySelectorAll('#roomList tbody td button')].some((b) => b.textContent === r), room);
  await shot(page, 'room');
  await page.click(`#members button.kick`);
  await confirm(page, `Kick ${member}`);
  await waitFor(page, () => document.querySelector('#members') && document.querySelectorAll('#members tbody tr').length === 0);
  result.kicked = member;

  // The events and the audit list tell what happened.
  await page.click('nav .tab[data-view=events]');
  await waitFor(page, () => document.querySelector('#events li[data-kind="node_joined"]')
    && document.querySelector('#events li[data-kind="operation"]'));
  await waitFor(page, (m) => [...document.querySelectorAll('#audit tbody tr')].some((tr) => tr.textContent.includes(`kick`) && tr.textContent.includes(m)), member);
  result.audit = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => [...tr.cells].slice(1).map((c) => c.textContent).join(' | ')));
  await shot(page, 'events');

  // Keyboard: the tabs are buttons reachable with Tab and pressed with Enter.
  await page.focus('nav .tab[data-view=cluster]');
  await page.keyboard.press('Enter');
  if (await page.isHidden('#view-cluster')) fail('Enter on the Cluster tab did not show it');
  if (errors.length) fail('page errors: ' + errors.join('; '));
  console.log(JSON.stringify({ ok: true, ...result }));
} finally {
  await browser.close();
}
