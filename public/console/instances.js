// The Instances panel: every instance of the cluster with its state, runtime, connections,
// LISTEN and delays. One that disappears is shown gone, faded, for the TTL, then dropped.

import { $, badge, duration, fillRows, h, num } from './dom.js';

const STATE_KIND = { ready: 'ok', draining: 'warn', full: 'warn', listen_down: 'warn', gone: 'bad' };
/** id -> { view, goneAt }: what was seen, so an instance reaped meanwhile still shows as gone. */
const known = new Map();

/** Draws the panel from GET /instances and each instance's newest sample. */
export function renderInstances({ instances, ttlMs }, latest, now = Date.now()) {
  const listed = new Set();
  for (const view of instances) {
    listed.add(view.id);
    known.set(view.id, { view, goneAt: view.state === 'gone' ? (known.get(view.id)?.goneAt ?? now) : null });
  }
  for (const [id, entry] of known) {
    if (listed.has(id)) continue;
    entry.goneAt ??= now;
    entry.view = { ...entry.view, state: 'gone' };
    if (now - entry.goneAt > ttlMs) known.delete(id);
  }
  const rows = [...known.values()].sort((a, b) => a.view.id.localeCompare(b.view.id)).map(({ view }) => row(view, latest.get(view.id), now));
  fillRows($('#instances-table'), rows);
  const live = [...known.values()].filter((e) => e.view.state !== 'gone');
  const connections = live.reduce((n, e) => n + (e.view.report?.connections.total ?? 0), 0);
  $('#instances-summary').textContent = `${live.length} live · ${connections.toLocaleString('en-US')} connections`;
  return [...known.values()].map((e) => e.view);
}

function row(view, sample, now) {
  const r = view.report;
  const c = r?.connections;
  const dialects = c ? [c.pgmesh && `pgmesh ${c.pgmesh}`, c.pusher && `pusher ${c.pusher}`, c.mercure && `mercure ${c.mercure}`, c.console && `console ${c.console}`, c.pending && `pending ${c.pending}`].filter(Boolean).join(' · ') : '–';
  return h(
    'tr',
    { class: view.state === 'gone' ? 'gone' : null, 'data-instance': view.id, 'data-state': view.state },
    h('td', {}, h('code', {}, view.id)),
    h('td', {}, view.region ?? '–'),
    h('td', {}, r ? `${r.runtime} ${r.runtimeVersion} · pgmesh ${r.version}` : '–'),
    h('td', {}, duration(now - Date.parse(view.startedAt))),
    h('td', { class: 'state' }, badge(view.state.replace('_', ' '), STATE_KIND[view.state] ?? 'warn')),
    h('td', { class: 'num', title: c ? `websocket ${c.websocket} · sse ${c.sse}` : '' }, c ? `${c.total.toLocaleString('en-US')} (ws ${c.websocket} · sse ${c.sse})` : '–'),
    h('td', {}, dialects || '–'),
    h('td', {}, r ? badge(r.listening ? 'up' : 'polling', r.listening ? 'ok' : 'warn') : '–'),
    num(sample ? Math.round(sample.lagMs) : null),
    num(r ? Math.round(r.loopDelayMs) : null),
    h('td', { class: 'num' }, r ? `${Math.round(r.memoryMb)} MB` : '–'),
  );
}
