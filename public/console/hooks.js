// The Hooks panel: each webhook queue (cluster-wide), calls to the backend (rpc), and the Pusher apps.

import { api } from './api.js';
import { $, badge, fillRows, h, num } from './dom.js';

/** Draws the webhook queues from GET /webhooks. */
export async function renderHooks() {
  const { targets } = await api('/webhooks');
  $('#hooks-none').hidden = targets.length > 0;
  fillRows(
    $('#hooks-table'),
    targets.map((t) => {
      const status = t.failing > 0 ? badge('failing', 'bad') : t.pending > 0 ? badge('sending', 'warn') : badge('ok', 'ok');
      return h('tr', { 'data-target': t.target },
        h('td', {}, t.app === null ? 'pgmesh' : `Pusher app ${t.app}`),
        h('td', {}, h('code', {}, t.url)),
        h('td', { class: 'status' }, status),
        num(t.pending), num(t.inFlight), num(t.failing),
        h('td', { class: 'last-error' }, t.lastError ?? '–'),
        h('td', {}, t.nextRetryAt ? new Date(t.nextRetryAt).toLocaleTimeString() : '–'),
        num(t.sent), num(t.failures), num(t.dropped + t.expired));
    }),
  );
}

/** Draws rpc and the Pusher apps from the live instances' reports. */
export function renderBackends(instances, pusherApps, latest) {
  const live = instances.filter((i) => i.state !== 'gone' && i.report);
  const calls = live.reduce((n, i) => n + i.report.rpc.calls, 0);
  const failures = live.reduce((n, i) => n + i.report.rpc.failures, 0);
  const p99 = Math.max(0, ...[...latest.values()].map((s) => s.rpcP99 ?? 0));
  $('#rpc-summary').textContent = calls === 0 ? 'no calls yet (MESH_RPC_URL)' : `${calls.toLocaleString('en-US')} calls, ${failures.toLocaleString('en-US')} failed (timeout or no usable answer)${p99 ? `, p99 ${p99} ms in the last second` : ''}`;
  const counts = new Map(pusherApps.map((id) => [id, 0]));
  for (const i of live) for (const [id, n] of Object.entries(i.report.pusherApps)) counts.set(id, (counts.get(id) ?? 0) + n);
  fillRows($('#pusher-apps'), [...counts].map(([id, n]) => h('tr', { 'data-app': id }, h('td', {}, id), num(n))));
  if (counts.size === 0) fillRows($('#pusher-apps'), [h('tr', {}, h('td', { colspan: 2, class: 'muted' }, 'no Pusher apps (PUSHER_APPS)'))]);
}
