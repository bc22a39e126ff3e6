// pgmesh browser client: a plain ES module, no build step.
//
//   import { connect } from '/mesh.js';            // or: import { connect } from 'pgmesh/client'
//   const mesh = connect({ url: 'https://host', token: () => fetchToken(), channels: ['@user', 'room_101'] });
//   mesh.addEventListener('message', (e) => console.log(e.detail.channel, e.detail.id, e.detail.data));
//   await mesh.publish('room_101', { text: 'hi' });
//
// Transports: a WebSocket, or — where proxies or networks kill WebSockets — an
// EventSource for the downlink and POSTs for the uplink. `transport: 'auto'`
// (the default) tries the WebSocket and falls back to SSE when it cannot open.
// After any drop it reconnects with jittered backoff, asks for a fresh token,
// resubscribes from the last position it knows and drops duplicates by id.

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 15_000;
// Consecutive WebSocket attempts that never opened before 'auto' switches to SSE.
const WS_ATTEMPTS_BEFORE_FALLBACK = 2;
// Closes after which reconnecting would be wrong: 4003 the server kicked this connection on purpose.
const FINAL_CLOSE_CODES = new Set([4003]);

/**
 * Opens a connection. Options: url (http(s) base of the pgmesh server; default this page's origin),
 * token (string or async function returning one), channels (names to subscribe, '@user' allowed),
 * transport ('auto' | 'websocket' | 'sse'), credentials (send cookies to a server on another origin over SSE).
 */
export function connect(options = {}) {
  return new MeshClient(options);
}

/**
 * Events: 'message' {channel, id, data, uid?}; 'state' {state: connecting|open|fallback|closed, transport};
 * 'error' {error, reply?}; 'expired' {channel, since, expiredUpTo} (history was deleted before it could be replayed);
 * 'disconnect' {code, reason}; with presence: 'members' {channel, members}, 'join' and 'leave' {channel, uid}.
 */
export class MeshClient extends EventTarget {
  #base;
  #token;
  #mode;
  // name as given -> { last, resume }: `last` is the id of the last message delivered on the
  // channel (older ones are duplicates); every message after `resume` is yet to be seen, so a
  // resubscribe asks for `since: resume`. A subscribe reply's `position` is the server's head
  // when the subscription went live, so it moves `resume` too. 0: not subscribed yet.
  #channels = new Map();
  #state = 'idle';
  #transport = null;
  #socket = null;
  #source = null;
  #session = null;
  #currentToken = null;
  #wsFailures = 0;
  #useSse = false;
  #attempt = 0;
  #pending = new Map();
  #rid = 0;
  #closed = false;
  #timer = null;
  #uid = null;
  #where = { connection: null, instance: null, region: null };
  #credentials;

  constructor({ url = globalThis.location?.origin, token, channels = [], transport = 'auto', credentials = false } = {}) {
    super();
    this.#base = new URL(url);
    this.#credentials = credentials;
    this.#token = token;
    this.#mode = transport;
    this.#useSse = transport === 'sse';
    for (const channel of channels) this.#channels.set(channel, { last: 0, resume: 0, presence: false });
    void this.#open();
  }

  /** connecting | open | fallback | closed */
  get state() {
    return this.#state;
  }

  /** 'websocket' or 'sse' while connected, else null. */
  get transport() {
    return this.#transport;
  }

  /** The authenticated user id, once open. */
  get uid() {
    return this.#uid;
  }

  /** Where the connection is, once open: its id, and the server instance and region holding it. */
  get where() {
    return { ...this.#where };
  }

  /**
   * Subscribes to a channel (kept across reconnects); resolves with the reply once connected.
   * With { presence: true } the channel's members arrive as a 'members' event (after every
   * reconnect too), then 'join' and 'leave' events as users come and go. With { since: id }
   * every message after that id comes first (a page that showed the history up to `id`).
   */
  async subscribe(channel, { presence = false, since = 0 } = {}) {
    const entry = this.#channels.get(channel) ?? { last: 0, resume: 0, presence: false };
    entry.presence ||= presence;
    entry.resume = Math.max(entry.resume, since);
    this.#channels.set(channel, entry);
    if (this.#state !== 'open') return null;
    const from = Math.max(entry.resume, entry.last);
    const reply = await this.#request({ op: 'subscribe', channel, ...(from > 0 ? { since: from } : {}), ...(entry.presence ? { presence: true } : {}) });
    this.#confirm(channel, reply);
    return reply;
  }

  async unsubscribe(channel) {
    this.#channels.delete(channel);
    return this.#state === 'open' ? this.#request({ op: 'unsubscribe', channel }) : null;
  }

  /** Publishes data to a channel; resolves with the reply (its `id` is the stored message id). */
  publish(channel, data) {
    return this.#request({ op: 'publish', channel, data });
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#teardown();
    this.#setState('closed');
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, transport: this.#transport } }));
  }

  async #freshToken() {
    this.#currentToken = typeof this.#token === 'function' ? await this.#token() : this.#token;
    return this.#currentToken;
  }

  async #open() {
    if (this.#closed) return;
    if (this.#state !== 'fallback') this.#setState('connecting');
    try {
      if (this.#useSse) await this.#openSse();
      else this.#openWebSocket();
    } catch (err) {
      this.#error(err);
      this.#retry();
    }
  }

  #openWebSocket() {
    const wsUrl = new URL('/v1/ws', this.#base);
    wsUrl.protocol = this.#base.protocol === 'https:' ? 'wss:' : 'ws:';
    wsUrl.searchParams.set('format', 'envelope');
    const socket = new WebSocket(wsUrl);
    let opened = false;
    this.#socket = socket;
    socket.onmessage = (event) => this.#onFrame(event.data);
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      if (!opened && this.#mode === 'auto' && ++this.#wsFailures >= WS_ATTEMPTS_BEFORE_FALLBACK) {
        this.#useSse = true;
        this.#setState('fallback');
        this.#attempt = 0;
        void this.#open();
        return;
      }
      this.#dropped({ code: event.code, reason: event.reason });
    };
    socket.onopen = async () => {
      opened = true;
      this.#wsFailures = 0;
      try {
        const auth = await this.#request({ op: 'auth', token: await this.#freshToken() });
        if (!auth.success) throw Object.assign(new Error(auth.msg), { reply: auth });
        this.#uid = auth.uid;
        this.#where = { connection: auth.connection ?? null, instance: auth.instance ?? null, region: auth.region ?? null };
        await this.#resubscribe();
        this.#live('websocket');
      } catch (err) {
        this.#error(err, err.reply);
        socket.close(4000, 'could not authenticate');
      }
    };
  }

  async #openSse() {
    const sseUrl = new URL('/v1/sse', this.#base);
    sseUrl.searchParams.set('format', 'envelope');
    // With no token, the cookie carries it (credentials: true across origins).
    const token = await this.#freshToken();
    if (token) sseUrl.searchParams.set('token', token);
    const source = new EventSource(sseUrl, { withCredentials: this.#credentials });
    this.#source = source;
    // Channels are subscribed over the uplink, like on the WebSocket: one reply per
    // channel (a refused one does not sink the others) and the same resume positions.
    source.addEventListener('session', async (e) => {
      const opened = JSON.parse(e.data);
      ({ session: this.#session, uid: this.#uid } = opened);
      this.#where = { connection: opened.connection ?? null, instance: opened.instance ?? null, region: opened.region ?? null };
      try {
        await this.#resubscribe();
        this.#live('sse');
      } catch (err) {
        this.#error(err);
        if (this.#source === source) this.#dropped({ code: 0, reason: 'could not subscribe' });
      }
    });
    source.addEventListener('message', (e) => this.#onFrame(e.data));
    source.addEventListener('expired', (e) => this.dispatchEvent(new CustomEvent('expired', { detail: JSON.parse(e.data) })));
    for (const event of ['join', 'leave']) source.addEventListener(event, (e) => this.#presence(event, JSON.parse(e.data)));
    source.addEventListener('close', (e) => {
      // The server ended the stream (e.g. the token expired): reconnect with a fresh token.
      source.close();
      if (this.#source === source) this.#dropped(JSON.parse(e.data));
    });
    // EventSource would reconnect by itself, but with a stale token and without the
    // channels added since: close it and reconnect on our terms.
    source.onerror = () => {
      source.close();
      if (this.#source === source) this.#dropped({ code: 0, reason: 'stream error' });
    };
  }

  #live(transport) {
    this.#transport = transport;
    this.#attempt = 0;
    this.#setState('open');
  }

  async #resubscribe() {
    for (const [channel, entry] of this.#channels) {
      const since = Math.max(entry.resume, entry.last);
      const reply = await this.#request({ op: 'subscribe', channel, ...(since > 0 ? { since } : {}), ...(entry.presence ? { presence: true } : {}) });
      if (reply.success) this.#confirm(channel, reply);
      else this.#error(new Error(`subscribe ${channel}: ${reply.msg}`), reply);
    }
  }

  #confirm(channel, reply) {
    const entry = this.#channels.get(channel);
    if (!entry || !reply?.success) return;
    // The server never handed out the position we asked to resume from (its database was reset):
    // forget it, or every new message would look like one already seen.
    if (reply.clamped) entry.last = entry.resume = reply.clamped.to;
    if (typeof reply.position === 'number') entry.resume = Math.max(entry.resume, reply.position);
    if (reply.members) {
      for (const [name, members] of Object.entries(reply.members)) this.dispatchEvent(new CustomEvent('members', { detail: { channel: name, members } }));
    }
  }

  #onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event === 'message') return this.#onMessage(frame);
    if (frame.event === 'expired') return this.dispatchEvent(new CustomEvent('expired', { detail: frame }));
    if (frame.event === 'join' || frame.event === 'leave') return this.#presence(frame.event, frame);
    if (frame.rid !== undefined && this.#pending.has(frame.rid)) {
      const { resolve } = this.#pending.get(frame.rid);
      this.#pending.delete(frame.rid);
      resolve(frame);
    }
  }

  #presence(event, { channel, uid }) {
    this.dispatchEvent(new CustomEvent(event, { detail: { channel, uid } }));
  }

  #onMessage(message) {
    const entry = this.#entryFor(message.channel);
    if (entry) {
      if (message.id <= entry.last) return; // seen already
      entry.last = message.id;
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  #entryFor(channel) {
    return this.#channels.get(channel) ?? (channel === `user:${this.#uid}` ? this.#channels.get('@user') : undefined);
  }

  #dropped(detail) {
    this.#teardown();
    if (this.#closed) return;
    this.dispatchEvent(new CustomEvent('disconnect', { detail }));
    if (FINAL_CLOSE_CODES.has(detail.code)) {
      this.#closed = true;
      this.#setState('closed');
      return;
    }
    this.#retry();
  }

  #retry() {
    if (this.#closed) return;
    this.#setState(this.#useSse && this.#mode === 'auto' ? 'fallback' : 'connecting');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt++);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#open(), delay / 2 + Math.random() * (delay / 2));
  }

  #teardown() {
    for (const { reject } of this.#pending.values()) reject(new Error('connection closed'));
    this.#pending.clear();
    this.#transport = null;
    const socket = this.#socket;
    this.#socket = null;
    socket?.close(1000, 'client closed');
    const source = this.#source;
    this.#source = null;
    source?.close();
    this.#session = null;
  }

  async #request(frame) {
    if (this.#source) return this.#post(frame);
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) throw new Error('not connected');
    const rid = ++this.#rid;
    return new Promise((resolve, reject) => {
      this.#pending.set(rid, { resolve, reject });
      socket.send(JSON.stringify({ ...frame, rid }));
    });
  }

  async #post(frame) {
    if (!this.#session) throw new Error('not connected');
    const res = await fetch(new URL(`/v1/sse/${this.#session}`, this.#base), {
      method: 'POST',
      credentials: this.#credentials ? 'include' : 'same-origin',
      headers: { 'content-type': 'application/json', ...(this.#currentToken ? { authorization: `Bearer ${this.#currentToken}` } : {}) },
      body: JSON.stringify(frame),
    });
    const body = await res.json();
    if (res.status === 404) this.#dropped({ code: 404, reason: 'session gone' });
    return body;
  }

  #error(err, reply) {
    this.dispatchEvent(new CustomEvent('error', { detail: { error: err, reply } }));
  }
}
