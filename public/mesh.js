// pgmesh browser client: a plain ES module, no build step.
//
//   import { connect } from '/mesh.js';
//   const mesh = connect({ url: 'https://host', token: () => fetchToken(), channels: ['@user', 'room_101'] });
//   mesh.addEventListener('message', (e) => console.log(e.detail.channel, e.detail.data));
//   await mesh.publish('room_101', { text: 'hi' });
//
// It speaks the envelope format over WebSocket, re-authenticates and resubscribes
// after every reconnect (jittered backoff), resumes each channel from the last id
// it saw, and drops any message it has already delivered.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

/**
 * Opens a connection. Options: url (http(s) base of the pgmesh server; default this page's origin),
 * token (string or async function returning one), channels (names to subscribe, '@user' allowed).
 */
export function connect(options = {}) {
  return new MeshClient(options);
}

export class MeshClient extends EventTarget {
  #url;
  #token;
  #channels = new Map(); // channel name as given -> last id delivered (or undefined)
  #socket = null;
  #state = 'idle';
  #attempt = 0;
  #pending = new Map(); // rid -> { resolve, reject }
  #rid = 0;
  #closed = false;
  #timer = null;
  #uid = null;

  constructor({ url = globalThis.location?.origin, token, channels = [] } = {}) {
    super();
    this.#url = new URL(url);
    this.#token = token;
    for (const channel of channels) this.#channels.set(channel, undefined);
    this.#open();
  }

  /** connecting | open | closed */
  get state() {
    return this.#state;
  }

  /** The authenticated user id, once open. */
  get uid() {
    return this.#uid;
  }

  /** The transport in use: 'websocket' while open. */
  get transport() {
    return this.#socket ? 'websocket' : null;
  }

  /** Subscribes to a channel (kept across reconnects). */
  subscribe(channel) {
    if (!this.#channels.has(channel)) this.#channels.set(channel, undefined);
    return this.#state === 'open' ? this.#request({ op: 'subscribe', channel }) : Promise.resolve(null);
  }

  unsubscribe(channel) {
    this.#channels.delete(channel);
    return this.#state === 'open' ? this.#request({ op: 'unsubscribe', channel }) : Promise.resolve(null);
  }

  /** Publishes data to a channel; resolves with the reply (its `id` is the stored message id). */
  publish(channel, data) {
    return this.#request({ op: 'publish', channel, data });
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#socket?.close(1000, 'client closed');
    this.#setState('closed');
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, transport: this.transport } }));
  }

  async #open() {
    if (this.#closed) return;
    this.#setState('connecting');
    const wsUrl = new URL('/v1/ws', this.#url);
    wsUrl.protocol = this.#url.protocol === 'https:' ? 'wss:' : 'ws:';
    wsUrl.searchParams.set('format', 'envelope');
    const socket = new WebSocket(wsUrl);
    this.#socket = socket;
    socket.onmessage = (event) => this.#onFrame(event.data);
    socket.onclose = (event) => this.#onClose(event);
    socket.onopen = async () => {
      try {
        const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
        const auth = await this.#request({ op: 'auth', token });
        if (!auth.success) throw Object.assign(new Error(auth.msg), { reply: auth });
        this.#uid = auth.uid;
        for (const [channel, since] of this.#channels) {
          const reply = await this.#request({ op: 'subscribe', channel, ...(since === undefined ? {} : { since }) });
          if (!reply.success) this.#error(new Error(`subscribe ${channel}: ${reply.msg}`), reply);
        }
        this.#attempt = 0;
        this.#setState('open');
      } catch (err) {
        this.#error(err, err.reply);
        socket.close(4000, 'auth failed');
      }
    };
  }

  #onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event === 'message') return this.#onMessage(frame);
    if (frame.rid !== undefined && this.#pending.has(frame.rid)) {
      const { resolve } = this.#pending.get(frame.rid);
      this.#pending.delete(frame.rid);
      resolve(frame);
    }
  }

  #onMessage(message) {
    // Remember positions under the name the app subscribed with ('@user' or the real name).
    for (const [name, last] of this.#channels) {
      if (name !== message.channel && !(name === '@user' && message.channel === `user:${this.#uid}`)) continue;
      if (last !== undefined && message.id <= last) return; // already delivered
      this.#channels.set(name, message.id);
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  #onClose(event) {
    for (const { reject } of this.#pending.values()) reject(new Error('connection closed'));
    this.#pending.clear();
    this.#socket = null;
    if (this.#closed) return;
    this.#setState('connecting');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt++);
    this.#timer = setTimeout(() => this.#open(), delay / 2 + Math.random() * (delay / 2));
    this.dispatchEvent(new CustomEvent('disconnect', { detail: { code: event.code, reason: event.reason } }));
  }

  #request(frame) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    const rid = ++this.#rid;
    return new Promise((resolve, reject) => {
      this.#pending.set(rid, { resolve, reject });
      socket.send(JSON.stringify({ ...frame, rid }));
    });
  }

  #error(err, reply) {
    this.dispatchEvent(new CustomEvent('error', { detail: { error: err, reply } }));
  }
}
