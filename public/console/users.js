// The Users panel: a uid's connections on every instance; kick one or all of them (with a
// reason the client sees), or put all of them into a channel. Changes need the API key's session.

import { api, seg } from './api.js';
import { $, duration, fillRows, h } from './dom.js';

let admin = false;
let shown = null;

/** Wires the panel; `canChange` is false for a read-only session (its buttons are hidden: the API would refuse anyway). */
export function initUsers(canChange) {
  admin = canChange;
  $('#user-search').addEventListener('submit', (e) => {
    e.preventDefault();
    void lookUp($('#user-uid').value.trim());
  });
  $('#kick-all').addEventListener('click', () => void act(`/users/${seg(shown)}/connections`, 'DELETE', `kicked every connection of ${shown}`));
  $('#subscribe-user').addEventListener('click', () => {
    const channel = $('#subscribe-channel').value.trim();
    if (channel) void act(`/users/${seg(shown)}/subscribe`, 'POST', `subscribed ${shown} to ${channel}`, { channels: [channel] });
  });
}

async function lookUp(uid) {
  if (!uid) return;
  shown = uid;
  try {
    const user = await api(`/users/${seg(uid)}`);
    if (shown !== uid) return;
    $('#user-status').textContent = user.online ? `${uid} is online on ${user.connections.length} connection(s)` : `${uid} is offline`;
    $('#user-actions').hidden = !admin || !user.online;
    const now = Date.now();
    fillRows(
      $('#user-connections'),
      user.connections.map((c) =>
        h('tr', { 'data-connection': c.id },
          h('td', {}, h('code', {}, c.id)),
          h('td', {}, c.instance),
          h('td', {}, c.transport),
          h('td', {}, c.address ?? '–'),
          h('td', {}, c.channels.join(', ') || '–'),
          h('td', { title: c.connectedAt }, `${duration(now - Date.parse(c.connectedAt))} ago`),
          h('td', {}, admin ? h('button', { type: 'button', class: 'danger', onclick: () => void act(`/connections/${seg(c.id)}`, 'DELETE', `kicked ${c.id}`) }, 'Kick') : null)),
      ),
    );
  } catch (err) {
    $('#user-status').textContent = err.message;
  }
}

async function act(path, method, done, body) {
  const reason = $('#kick-reason').value.trim();
  try {
    await api(path, { method, body, query: method === 'DELETE' && reason ? { reason } : undefined });
    $('#user-action-result').textContent = done;
  } catch (err) {
    $('#user-action-result').textContent = `${err.code}: ${err.message}`;
  }
  // The command reaches the connection's instance through the feed; the list follows a moment later.
  setTimeout(() => void lookUp(shown), 800);
}
