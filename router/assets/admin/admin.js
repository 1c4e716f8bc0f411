// roomrouter operator dashboard (docs/admin.md). Plain JS, no build step.
// Every call goes to this router's own API with the admin token from
// sessionStorage as `Authorization: Bearer`; the token never enters a URL.
'use strict';

const TOKEN_KEY = 'roomrouter.admin.token';
const POLL_MS = 2000;
const OP_POLL_MS = 700;
const PAGE = 50;
const $ = (sel) => document.querySelector(sel);

const state = {
  view: 'cluster', nodes: [], eventsAfter: 0, timer: null,
  room: null, plan: null, opId: null, opTimer: null,
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    throw new ApiError(res.status, json && json.error, (json && json.message) || `${res.status} ${res.statusText}`);
  }
  return json;
}

// --- small DOM helpers -------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
const fmt = (n, digits = 0) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en', { maximumFractionDigits: digits }));
const when = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
function notice(text) {
  const n = $('#notice');
  n.textContent = text || '';
  n.hidden = !text;
}

// --- confirmation dialog ------------------------------------------------------
function confirmAction(text, okLabel = 'Confirm') {
  const dialog = $('#confirm');
  $('#confirmText').textContent = text;
  $('#confirmOk').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('#confirmCancel').focus();
  });
}

// --- sign in -------------------------------------------------------------------
async function signIn(token) {
  if (token !== undefined) sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api('GET', '/admin/overview');
  } catch (e) {
    if (e.code === 'admin_disabled') {
      showLogin(`${e.message}: start the router with --admin-token (ROUTER_ADMIN_TOKEN) to use this page.`);
      return;
    }
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(token === undefined ? '' : `Refused: ${e.message} (${e.status})`);
      return;
    }
    showLogin(`The router did not answer: ${e.message}`);
    return;
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#signOut').hidden = !sessionStorage.getItem(TOKEN_KEY);
  start();
}

function showLogin(error) {
  stop();
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#signOut').hidden = true;
  $('#loginError').textContent = error || '';
  $('#token').focus();
}

// --- polling ---------------------------------------------------------------------
function start() {
  stop();
  const tick = async () => {
    // A hidden tab asks for nothing (the nodes are scraped only on demand).
    if (document.hidden) {
      state.timer = setTimeout(tick, POLL_MS);
      return;
    }
    try {
      await refreshOverview();
      await refreshEvents();
      if (state.view === 'events') await refreshAudit();
      if (state.view === 'operations') await refreshOperations();
      notice('');
    } catch (e) {
      if (e.status === 401 || e.status === 403) return showLogin(`Signed out: ${e.message}`);
      notice(`The router did not answer: ${e.message}`);
    }
    state.timer = setTimeout(tick, POLL_MS);
  };
  tick();
}
function stop() {
  clearTimeout(state.timer);
  state.timer = null;
}

// --- cluster view ------------------------------------------------------------------
async function refreshOverview() {
  const o = await api('GET', '/admin/overview');
  state.nodes = o.nodes;
  const r = o.router;
  $('#routerStatus').textContent = `Router ${r.ready ? 'ready' : `NOT READY (${r.reason})`} · ${fmt(r.nodes)} node(s) · ${fmt(r.rooms)} room(s)`;
  const im = o.imbalance;
  const ind = $('#imbalance');
  ind.className = `indicator ${im.over ? 'over' : 'ok'}`;
  const ratio = im.ratio === null ? 'no rooms yet' : `the busiest node (${im.busiest}) holds ${im.ratio.toFixed(2)}× the average`;
  ind.textContent = `${im.over ? 'Imbalanced' : 'Balanced'}: ${ratio}, ${fmt(im.total_rooms)} room(s) in all. Rule: ${im.rule}.`
    + (im.over ? ' Run a rebalance (Operations).' : '');
  renderChart(o.nodes);
  renderNodes(o.nodes);
  fillNodeSelect(o.nodes);
}

function renderChart(nodes) {
  const svg = $('#chart');
  const NS = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const max = nodes.reduce((m, n) => Math.max(m, n.rooms), 1);
  // Many nodes: thinner bars, labels on every `every`th bar only (the
  // table and the chart's title list them all).
  const many = nodes.length > 40;
  const barW = many ? 6 : 34, gap = many ? 2 : 14, top = 22, h = 170, bottom = 34, left = 10;
  const every = many ? Math.ceil(nodes.length / 40) : 1;
  const width = Math.max(300, left * 2 + nodes.length * (barW + gap));
  svg.setAttribute('width', width);
  svg.setAttribute('height', top + h + bottom);
  svg.setAttribute('viewBox', `0 0 ${width} ${top + h + bottom}`);
  const title = svg.querySelector('title');
  svg.replaceChildren(title);
  title.textContent = 'Rooms per node: ' + nodes.map((n) => `${n.id} ${n.rooms}${n.state === 'draining' ? ' (draining)' : ''}`).join(', ');
  const defs = s('defs', {});
  const hatch = s('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
  hatch.append(s('rect', { width: 6, height: 6, fill: '#fff' }), s('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#1a5fb4', 'stroke-width': 3 }));
  defs.append(hatch);
  svg.append(defs, s('line', { class: 'axis', x1: left, y1: top + h, x2: width - left, y2: top + h }));
  nodes.forEach((n, i) => {
    const x = left + i * (barW + gap) + gap / 2;
    const bh = Math.round((n.rooms / max) * h);
    const g = s('g', { class: 'node', 'data-node': n.id });
    const bar = s('rect', { class: `bar ${n.state}`, x, y: top + h - bh, width: barW, height: Math.max(bh, 1) });
    bar.append(s('title', {}, `${n.id}: ${n.rooms} room(s), ${n.state}`));
    g.append(bar);
    if (i % every === 0) {
      if (!many) g.append(s('text', { x: x + barW / 2, y: top + h - bh - 5, 'text-anchor': 'middle', class: 'count' }, String(n.rooms)));
      g.append(s('text', { x: x + barW / 2, y: top + h + 14, 'text-anchor': 'middle', class: 'label' }, n.id));
    }
    if (n.state === 'draining' && !many) g.append(s('text', { x: x + barW / 2, y: top + h + 27, 'text-anchor': 'middle' }, 'draining'));
    svg.append(g);
  });
}

function liveCell(n, key, digits = 0) {
  if (n.live.status !== 'ok') return el('td', { class: 'num noanswer', title: n.live.error || '' }, 'no answer');
  return el('td', { class: 'num' }, fmt(n.live[key], digits));
}

// Replication health in words, not colour alone: copies held for other
// nodes, and what is at risk here (docs/replication.md).
function replicationCell(n) {
  if (n.live.status !== 'ok') return el('td', { class: 'noanswer' }, 'no answer');
  const unprotected = n.live.rooms_without_replica || 0;
  const pending = n.live.replication_pending || 0;
  const text = unprotected > 0
    ? `${fmt(unprotected)} room(s) without replica`
    : pending > 0 ? `ok, ${fmt(pending)} waiting` : 'ok';
  return el('td', {
    class: unprotected > 0 ? 'replication warn' : 'replication',
    title: `holds ${fmt(n.live.replica_rooms || 0)} copies of other nodes' rooms`,
  }, `${text}; ${fmt(n.live.replica_rooms || 0)} copies held`);
}

function renderNodes(nodes) {
  const body = $('#nodes tbody');
  body.replaceChildren(...nodes.map((n) => {
    const action = n.state === 'draining'
      ? el('button', { type: 'button', class: 'undrain', 'data-node': n.id, onclick: () => undrain(n.id) }, `Undrain ${n.id}`)
      : el('button', { type: 'button', class: 'drain', 'data-node': n.id, onclick: () => drain(n.id) }, `Drain ${n.id}…`);
    const browse = el('button', { type: 'button', onclick: () => { showView('rooms'); browseNode(n.id, null); } }, 'Rooms');
    return el('tr', { 'data-node': n.id },
      el('th', { scope: 'row', title: n.addr }, n.id),
      el('td', { class: `state-${n.state}` }, n.state),
      el('td', { class: 'num' }, fmt(n.weight, 2)),
      el('td', { class: 'num rooms' }, fmt(n.rooms)),
      liveCell(n, 'active_rooms'), liveCell(n, 'connections'),
      liveCell(n, 'messages_in_per_sec', 1), liveCell(n, 'messages_out_per_sec', 1),
      liveCell(n, 'slow_consumers_total'),
      replicationCell(n),
      el('td', {}, action, ' ', browse));
  }));
}

function fillNodeSelect(nodes) {
  const sel = $('#browseNode');
  const have = [...sel.options].map((o) => o.value).join(',');
  const want = nodes.map((n) => n.id).join(',');
  if (have === want) return;
  const current = sel.value;
  sel.replaceChildren(...nodes.map((n) => el('option', { value: n.id }, n.id)));
  if (nodes.some((n) => n.id === current)) sel.value = current;
}

// --- operations -------------------------------------------------------------------
async function startOperation(body, description) {
  try {
    const op = await api('POST', '/admin/operations', body);
    $('#progress').replaceChildren();
    showView('operations');
    followOperation(op.id);
    return op;
  } catch (e) {
    notice(`${description} refused: ${e.message}`);
    return null;
  }
}

async function drain(node) {
  const n = state.nodes.find((x) => x.id === node);
  const ok = await confirmAction(`Drain ${node}? It stops taking new rooms and its ${n ? n.rooms : ''} room(s) move to other nodes (live, members reconnect).`, `Drain ${node}`);
  if (ok) await startOperation({ op: 'drain', node }, `Drain ${node}`);
}

async function undrain(node) {
  const ok = await confirmAction(`Undrain ${node}? It takes new rooms again (rooms already moved stay where they are until a rebalance).`, `Undrain ${node}`);
  if (ok) await startOperation({ op: 'undrain', node }, `Undrain ${node}`);
}

async function showPlan() {
  const p = await api('GET', '/admin/plan');
  state.plan = p;
  const rows = Object.keys(p.before).map((id) => el('tr', { 'data-node': id },
    el('th', { scope: 'row' }, id), el('td', { class: 'num' }, fmt(p.before[id])), el('td', { class: 'num' }, fmt(p.after[id])),
    el('td', { class: 'num' }, `${p.after[id] - p.before[id] >= 0 ? '+' : ''}${fmt(p.after[id] - p.before[id])}`)));
  $('#plan').replaceChildren(
    el('h3', {}, 'Rebalance plan'),
    el('p', { id: 'planSummary' }, `${fmt(p.moves)} room(s) to move` + (p.orphaned ? `; ${fmt(p.orphaned)} on lost nodes (failover moves those)` : '') + '.'),
    el('table', { id: 'planTable' }, el('caption', {}, 'Rooms per node, before → after'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Node'), el('th', { scope: 'col', class: 'num' }, 'Before'),
        el('th', { scope: 'col', class: 'num' }, 'After'), el('th', { scope: 'col', class: 'num' }, 'Change'))),
      el('tbody', {}, rows)),
    p.flows.length ? el('p', {}, 'Moves: ' + p.flows.map((f) => `${f.rooms} ${f.from} → ${f.to}`).join(', ')) : null);
  $('#runRebalance').disabled = p.moves === 0;
}

async function runRebalance() {
  const p = state.plan;
  if (!p) return;
  const ok = await confirmAction(`Run the rebalance? About ${p.moves} room(s) move live to their new owners; their members reconnect.`, 'Run rebalance');
  if (ok) await startOperation({ op: 'rebalance' }, 'Rebalance');
}

function followOperation(id) {
  state.opId = id;
  clearTimeout(state.opTimer);
  const tick = async () => {
    let op;
    try { op = await api('GET', `/admin/operations/${id}`); } catch (e) { notice(`Operation ${id}: ${e.message}`); return; }
    renderProgress(op);
    if (op.state === 'running') state.opTimer = setTimeout(tick, OP_POLL_MS);
    else { refreshOperations().catch(() => {}); refreshOverview().catch(() => {}); }
  };
  tick();
}

function renderProgress(op) {
  const total = Math.max(op.total, op.moved + op.failed);
  const title = `Operation ${op.id}: ${op.kind}${op.node ? ' ' + op.node : ''}`;
  $('#progress').replaceChildren(
    el('h3', {}, title),
    el('p', { id: 'opState', 'data-state': op.state, 'data-op': op.id, 'data-kind': op.kind },
      `State: ${op.state} · moved ${fmt(op.moved)} of ${fmt(total)} · failed ${fmt(op.failed)}`
      + (op.current ? ` · current: ${op.current}` : '') + (op.error ? ` · error: ${op.error}` : '')),
    el('progress', { max: Math.max(total, 1), value: op.state === 'running' ? op.moved + op.failed : Math.max(total, 1), 'aria-label': `${title} progress` }),
    el('div', { class: 'log', role: 'log' }, op.log.join('\n')));
}

async function refreshOperations() {
  const { operations } = await api('GET', '/admin/operations');
  $('#operations tbody').replaceChildren(...operations.map((o) => el('tr', {},
    el('td', {}, o.id), el('td', {}, `${o.kind}${o.node ? ' ' + o.node : ''}`), el('td', {}, o.by), el('td', {}, o.state),
    el('td', { class: 'num' }, fmt(o.moved)), el('td', { class: 'num' }, fmt(o.failed)), el('td', {}, when(o.started_at)))));
}

// --- rooms -----------------------------------------------------------------------
async function browseNode(node, after) {
  $('#browseNode').value = node;
  const q = new URLSearchParams({ node, limit: PAGE });
  if (after) q.set('after', after);
  const page = await api('GET', `/rooms?${q}`);
  fillRoomList(page.rooms, `Rooms of ${node}` + (after ? ` after ${after}` : '') + ` (${page.rooms.length} shown)`);
  $('#firstPage').disabled = !after;
  $('#firstPage').onclick = () => browseNode(node, null).catch((x) => notice(x.message));
  const next = $('#nextPage');
  next.disabled = !page.next;
  next.onclick = () => browseNode(node, page.next).catch((e) => notice(e.message));
}

// The room `id` if it exists, and the rooms whose id starts with it (the
// store lists ids in order: those after `id` that share its prefix).
async function searchRooms(prefix, after) {
  if (!after) await openRoom(prefix);
  const q = new URLSearchParams({ after: after || prefix, limit: PAGE });
  const page = await api('GET', `/rooms?${q}`);
  const matches = page.rooms.filter((r) => r.id.startsWith(prefix));
  fillRoomList(matches, `Rooms whose id starts with ${prefix}` + (after ? ` after ${after}` : '') + ` (${matches.length} shown)`);
  $('#firstPage').disabled = !after;
  $('#firstPage').onclick = () => searchRooms(prefix).catch((x) => notice(x.message));
  const more = page.next && matches.length === page.rooms.length;
  const next = $('#nextPage');
  next.disabled = !more;
  next.onclick = () => searchRooms(prefix, page.next).catch((x) => notice(x.message));
}

function fillRoomList(rooms, caption) {
  $('#roomListCaption').textContent = caption;
  $('#roomList tbody').replaceChildren(...rooms.map((r) => el('tr', {},
    el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => openRoom(r.id) }, r.id)),
    el('td', { class: 'num' }, r.epoch), el('td', {}, r.private ? 'yes' : 'no'))));
}

async function openRoom(id) {
  state.room = id;
  const box = $('#roomDetail');
  let rec;
  try { rec = await api('GET', `/rooms/${encodeURIComponent(id)}`); } catch (e) {
    box.replaceChildren(el('p', { class: 'error', id: 'roomError' }, e.status === 404 ? `No room ${id}.` : e.message));
    return;
  }
  const [members, history] = await Promise.all([
    api('GET', `/rooms/${encodeURIComponent(id)}/members`).catch((e) => ({ error: e.message })),
    api('GET', `/rooms/${encodeURIComponent(id)}/history?limit=1000`).catch((e) => ({ error: e.message })),
  ]);
  const memberRows = (members.members || []).map((m) => el('tr', { 'data-member': m.member },
    el('td', {}, m.member), el('td', {}, m.name || '–'), el('td', {}, m.transport), el('td', {}, when(m.joined_at * 1000)),
    el('td', {}, el('button', { type: 'button', class: 'kick', onclick: () => kick(id, m.member, m.name) }, `Kick ${m.member}`))));
  const recent = (history.messages || []).slice(-20);
  box.replaceChildren(
    el('h3', { id: 'roomTitle' }, `Room ${rec.id}`),
    el('dl', { id: 'roomRecord' },
      el('dt', {}, 'Owner'), el('dd', { id: 'roomOwner' }, rec.node),
      el('dt', {}, 'Epoch'), el('dd', {}, rec.epoch),
      el('dt', {}, 'Private'), el('dd', {}, rec.private ? 'yes' : 'no'),
      el('dt', {}, 'Created'), el('dd', {}, rec.created_at ? when(rec.created_at * 1000) : '–')),
    el('div', { class: 'row' },
      el('button', { type: 'button', onclick: () => openRoom(id) }, 'Refresh'),
      el('button', { type: 'button', class: 'danger', id: 'deleteRoom', onclick: () => deleteRoom(id) }, 'Delete room…')),
    el('table', { id: 'members' }, el('caption', {}, members.error ? `Members: ${members.error}` : `Members (${memberRows.length})`),
      el('thead', {}, el('tr', {}, ...['Member', 'Name', 'Transport', 'Joined', 'Action'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, memberRows)),
    el('h3', {}, history.error ? `Recent messages: ${history.error}` : `Recent messages (last ${recent.length})`),
    el('ol', { class: 'messages', id: 'history' }, recent.map((m) => el('li', { value: m.seq },
      el('b', {}, m.name || m.from), ': ', JSON.stringify(m.body)))));
}

async function kick(room, member, name) {
  const ok = await confirmAction(`Kick ${member}${name ? ` (${name})` : ''} from ${room}? It gets the error "kicked" and is disconnected.`, `Kick ${member}`);
  if (!ok) return;
  try {
    await api('DELETE', `/rooms/${encodeURIComponent(room)}/members/${encodeURIComponent(member)}`);
    notice('');
  } catch (e) { notice(`Kick refused: ${e.message}`); }
  await openRoom(room);
}

async function deleteRoom(room) {
  const ok = await confirmAction(`Delete room ${room}? Its members are disconnected and its history is gone.`, `Delete ${room}`);
  if (!ok) return;
  try {
    await api('DELETE', `/rooms/${encodeURIComponent(room)}`);
    $('#roomDetail').replaceChildren(el('p', { id: 'roomDeleted' }, `Room ${room} deleted.`));
  } catch (e) { notice(`Delete refused: ${e.message}`); }
}

// --- events and audit ----------------------------------------------------------------
async function refreshEvents() {
  const page = await api('GET', `/admin/events?after=${state.eventsAfter}`);
  const list = $('#events');
  for (const ev of page.events) {
    list.prepend(el('li', { 'data-kind': ev.kind }, el('time', { datetime: new Date(ev.at).toISOString() }, when(ev.at)),
      el('span', { class: 'kind' }, ev.kind.replace('_', ' ')), ev.message));
    state.eventsAfter = ev.seq;
  }
  while (list.children.length > 300) list.lastChild.remove();
}

async function refreshAudit() {
  const { entries } = await api('GET', '/admin/audit');
  $('#audit tbody').replaceChildren(...entries.map((a) => el('tr', {},
    el('td', {}, when(a.at)), el('td', {}, a.who), el('td', {}, a.action), el('td', {}, a.result))));
}

// --- views -------------------------------------------------------------------------
function showView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll('nav .tab')) tab.setAttribute('aria-pressed', String(tab.dataset.view === view));
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${view}`;
  if (view === 'events') refreshAudit().catch((e) => notice(e.message));
  if (view === 'operations') refreshOperations().catch((e) => notice(e.message));
}

for (const tab of document.querySelectorAll('nav .tab')) tab.addEventListener('click', () => showView(tab.dataset.view));
$('#loginForm').addEventListener('submit', (e) => { e.preventDefault(); signIn($('#token').value); });
$('#signOut').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(''); });
$('#searchForm').addEventListener('submit', (e) => { e.preventDefault(); searchRooms($('#roomSearch').value.trim()).catch((x) => notice(x.message)); });
$('#browseForm').addEventListener('submit', (e) => { e.preventDefault(); browseNode($('#browseNode').value, null).catch((x) => notice(x.message)); });
$('#planRebalance').addEventListener('click', () => showPlan().catch((e) => notice(`Plan: ${e.message}`)));
$('#runRebalance').addEventListener('click', runRebalance);
signIn();
