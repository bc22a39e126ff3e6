// The Channels panel: channels with subscribers, by prefix, a page at a time (keyset paging:
// as fast on the 2,000th page as on the first); one channel's members and last messages,
// which then come live over the console's own connection (mesh.js).

import { api, seg } from './api.js';
import { $, fillRows, h, num } from './dom.js';

const PAGE = 50;
const SHOWN_MESSAGES = 50;
let mesh = null;
/** The cursors of the pages before this one (for going back to the first), this page's, the next. */
let cursor = null;
let next = null;
let open = null;
let membersTimer = null;

/** Wires the panel to the console's connection. */
export function initChannels(connection) {
  mesh = connection;
  $('#channels-search').addEventListener('submit', (e) => {
    e.preventDefault();
    cursor = null;
    void loadChannels();
  });
  $('#channels-first').addEventListener('click', () => {
    cursor = null;
    void loadChannels();
  });
  $('#channels-next').addEventListener('click', () => {
    if (next === null) return;
    cursor = next;
    void loadChannels();
  });
  mesh.addEventListener('message', (e) => {
    if (open === null || e.detail.channel !== open) return;
    addMessage(e.detail, true);
  });
  void loadChannels();
}

/** Loads the current page again (the panel's refresh). */
export async function loadChannels() {
  const prefix = $('#channels-prefix').value;
  try {
    const page = await api('/channels', { query: { prefix, limit: PAGE, cursor } });
    next = page.next;
    $('#channels-count').textContent = `${page.count.toLocaleString('en-US')} with subscribers${prefix ? ` starting with “${prefix}”` : ''}`;
    $('#channels-next').disabled = next === null;
    fillRows(
      $('#channels-table'),
      page.channels.map((c) =>
        h('tr', { class: `clickable${c.channel === open ? ' selected' : ''}`, 'data-channel': c.channel, onclick: () => void openChannel(c.channel) },
          h('td', {}, h('code', {}, c.channel)), num(c.subscribers), num(c.users)),
      ),
    );
  } catch (err) {
    $('#channels-count').textContent = err.message;
  }
}

async function openChannel(channel) {
  if (open !== null && open !== channel) void mesh.unsubscribe(open);
  open = channel;
  for (const row of $('#channels-table').tBodies[0].rows) row.classList.toggle('selected', row.dataset.channel === channel);
  $('#channel-detail').hidden = false;
  $('#channel-name').textContent = channel;
  $('#channel-messages').replaceChildren();
  const history = await api(`/channels/${seg(channel)}/history`, { query: { limit: 20 } });
  if (open !== channel) return;
  for (const m of history.messages) addMessage(m, true);
  // Everything after the history's position comes live (mesh.js asks with `since`, drops duplicates).
  void mesh.subscribe(channel, { since: history.position });
  clearInterval(membersTimer);
  await loadMembers(channel);
  membersTimer = setInterval(() => void loadMembers(channel), 2000);
}

async function loadMembers(channel) {
  if (open !== channel) return clearInterval(membersTimer);
  const page = await api('/users', { query: { channel, limit: 100 } }).catch(() => null);
  if (page === null || open !== channel) return;
  $('#channel-members-count').textContent = `${page.count.toLocaleString('en-US')} users`;
  $('#channel-members').replaceChildren(...page.users.map((uid) => h('li', {}, uid)));
}

function addMessage(m, newest) {
  const list = $('#channel-messages');
  if (list.querySelector(`[data-id="${Number(m.id)}"]`)) return;
  const data = typeof m.data === 'string' ? m.data : JSON.stringify(m.data);
  const item = h('li', { 'data-id': Number(m.id) }, `#${m.id}${m.uid ? ` ${m.uid}` : ''}: ${data.length > 500 ? `${data.slice(0, 500)}…` : data}`);
  if (newest) list.prepend(item);
  else list.append(item);
  while (list.children.length > SHOWN_MESSAGES) list.lastElementChild.remove();
}
