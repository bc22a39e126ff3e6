// The operator's console: signs in, then reads the whole cluster through the server API and
// keeps its own connection (mesh.js) for what arrives live. No build step: ES modules.

import { connect } from '/mesh.js';
import { api, session, useCsrf } from './api.js';
import { $ } from './dom.js';
import { renderInstances } from './instances.js';
import { addSamples, latestSamples, renderTraffic } from './traffic.js';
import { initChannels, loadChannels } from './channels.js';
import { initUsers } from './users.js';
import { renderBackends, renderHooks } from './hooks.js';
import { renderProblems } from './problems.js';

const SAMPLES_EVERY_MS = 500;
const HOOKS_EVERY_MS = 2000;
const CHANNELS_EVERY_MS = 5000;

async function start() {
  const current = await session();
  if (current.ok) return run(current.answer);
  // This machine, no key configured: the session comes without one.
  if (current.answer?.keyRequired === false) {
    const made = await session('POST', {});
    if (made.ok) return start();
  }
  showLogin();
}

function showLogin() {
  $('#login').hidden = false;
  $('#console').hidden = true;
  $('#login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const made = await session('POST', { key: $('#key').value });
    if (!made.ok) {
      $('#login-error').textContent = made.answer?.code === 'ERR_LIMIT' ? 'Too many wrong keys: wait a minute.' : 'Wrong key.';
      return;
    }
    $('#key').value = '';
    $('#login').hidden = true;
    const current = await session();
    if (current.ok) run(current.answer);
  });
}

function run(me) {
  useCsrf(me.csrf);
  $('#console').hidden = false;
  $('#role').textContent = me.role === 'admin' ? 'admin' : 'read-only';
  $('#where').textContent = `served by ${me.instance}${me.region ? ` (${me.region})` : ''}`;
  $('#sign-out').hidden = false;
  $('#sign-out').addEventListener('click', async () => {
    await session('DELETE');
    location.reload();
  });
  document.body.dataset.role = me.role;

  // The console's own connection: a token for it comes with the session, fresh at each reconnect.
  const mesh = connect({ token: async () => (await session()).answer?.token ?? me.token });
  mesh.addEventListener('state', (e) => {
    $('#live').textContent = e.detail.state === 'open' ? `live (${e.detail.transport})` : e.detail.state;
    $('#live').className = `badge ${e.detail.state === 'open' ? 'ok' : 'warn'}`;
  });
  initChannels(mesh);
  initUsers(me.role === 'admin');

  let instances = { instances: [], ttlMs: 15000, pusherApps: [] };
  let after = null;
  const pollSamples = async () => {
    try {
      const answer = await api('/instances/samples', after === null ? { query: { step: 5 } } : { query: { after } });
      addSamples(answer.samples);
      if (answer.last !== null) after = answer.last;
      renderTraffic();
    } catch (err) {
      if (err.status === 401) location.reload();
    }
  };
  const pollInstances = async () => {
    try {
      instances = await api('/instances');
      const shown = renderInstances(instances, latestSamples());
      renderProblems(shown);
      renderBackends(shown, instances.pusherApps, latestSamples());
    } catch {
      // Shown as stale by the next answer; the database may be down.
    }
  };
  const pollHooks = () => renderHooks().catch(() => {});
  void pollInstances();
  void pollSamples();
  void pollHooks();
  every(SAMPLES_EVERY_MS, pollSamples);
  every(1000, pollInstances);
  every(HOOKS_EVERY_MS, pollHooks);
  every(CHANNELS_EVERY_MS, loadChannels);
}

/** Runs `task` every `ms`, never two at once (a slow answer skips a beat rather than piling up). */
function every(ms, task) {
  let busy = false;
  setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      await task();
    } finally {
      busy = false;
    }
  }, ms);
}

void start();
