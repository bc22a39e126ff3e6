/** The Bun adapter: Bun.serve with Hono's Bun WebSocket handler plus backpressure settings. */
import type { ServerWebSocket } from 'bun';
import { getBunServer, getConnInfo, upgradeWebSocket, websocket } from 'hono/bun';
import type { EventBody, EventBodyOwner, RawSocket, RuntimeAdapter } from './adapter.ts';
import { onFirstSignal, onUncaughtProcess, startModuleThread } from './common.ts';

export const runtime: RuntimeAdapter = {
  name: 'bun',
  version: Bun.version,
  upgradeWebSocket,
  upgradesLate: true,
  // Hono builds a new WSContext per event on Bun; the raw socket is the stable handle.
  socket: (ws) => new BunSocket(ws.raw as ServerWebSocket<unknown>),

  remoteAddress: (c) => getConnInfo(c).remote.address,
  keepOpen: (c) => {
    getBunServer<{ timeout(req: Request, seconds: number): void }>(c)?.timeout(c.req.raw, 0);
  },
  eventBody: (owner) => new DirectEventBody(owner),
  async serve(fetch, options) {
    const server = Bun.serve({
      port: options.port,
      hostname: options.hostname,
      fetch,
      idleTimeout: 120,
      websocket: {
        ...websocket,
        maxPayloadLength: options.maxFrame,
        // pgmesh closes a slow consumer itself at maxBuffered, with 4008 after the data already
        // queued (the hub checks natively fanned-out sockets a few times a second). Bun's own
        // limit is the hard stop behind it, for a burst between two checks: it cuts with no close frame.
        backpressureLimit: Math.max(options.maxBuffered * 4, options.maxBuffered + (16 << 20)),
        closeOnBackpressureLimit: true,
        idleTimeout: 120,
        sendPings: true,
      },
    });
    return {
      port: server.port!,
      stop: () => server.stop(true),
      // Bun's topic publish frames and writes in native code, once per message.
      broadcast: (topic, frame) => void server.publish(topic, frame),
    };
  },
  startThread: startModuleThread,
  onShutdownSignal: (handler) => onFirstSignal((signal, fire) => process.once(signal, fire), handler),
  onUncaught: onUncaughtProcess,
};

/** Bun's socket as a RawSocket: a class, so an idle connection carries no closures. */
class BunSocket implements RawSocket {
  readonly topics: NonNullable<RawSocket['topics']>;
  constructor(readonly raw: ServerWebSocket<unknown>) {
    this.topics = this;
  }
  send(text: string): void {
    this.raw.send(text);
  }
  close(code: number, reason: string): void {
    this.raw.close(code, reason);
  }
  buffered(): number {
    return this.raw.getBufferedAmount();
  }
  subscribe(topic: string): void {
    this.raw.subscribe(topic);
  }
  unsubscribe(topic: string): void {
    this.raw.unsubscribe(topic);
  }
}

// The global ReadableStream's type here is the WHATWG one, which has no direct sources.
const DirectStream = ReadableStream as unknown as new (source: Bun.DirectUnderlyingSource<Uint8Array>) => ReadableStream<Uint8Array>;

/**
 * An event body as one of Bun's direct streams: writes go straight to the response's
 * sink, with no JS queue, reader or promise chain per stream (an idle SSE stream costs
 * about half as much). The object is its own underlying source, so it adds no closures.
 * Bun cancels the stream when its client is gone, even one that left before the response
 * was returned: the request's abort signal (a few hundred bytes per stream) is not needed.
 * Bun says a client is slow by answering a write with a promise once its own buffer is
 * full (a few MB with the kernel's); what is written after that is the count kept here.
 */
class DirectEventBody implements EventBody {
  readonly type = 'direct';
  readonly body: ReadableStream<Uint8Array>;
  #controller: ReadableStreamDirectController | undefined;
  // Bytes not yet handed to Bun: written in this task, or before Bun started the response.
  #pending: Uint8Array[] | undefined;
  #pendingBytes = 0;
  #flushQueued = false;
  #done = false;
  #closing = false;
  #waiting = false;
  #backlog = 0;

  constructor(readonly owner: EventBodyOwner) {
    this.body = new DirectStream(this);
  }
  handedOver(): void {}
  pull(controller: ReadableStreamDirectController): void {
    this.#controller = controller;
    this.flush();
    if (this.#closing) controller.close();
  }
  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.#pending = undefined;
    this.owner.cancelled();
  }
  write(bytes: Uint8Array): void {
    if (this.#done || this.#closing) return;
    (this.#pending ??= []).push(bytes);
    this.#pendingBytes += bytes.byteLength;
    if (this.#controller === undefined || this.#flushQueued) return;
    this.#flushQueued = true;
    unflushed.push(this);
    if (unflushed.length === 1) queueMicrotask(flushAll);
  }
  /** Hands what is pending to Bun in one write: a fan-out batch costs one write per stream, not one per message. */
  flush(): void {
    this.#flushQueued = false;
    const pending = this.#pending;
    if (pending === undefined || this.#controller === undefined || this.#done) return;
    const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending, this.#pendingBytes);
    this.#pending = undefined;
    this.#pendingBytes = 0;
    const written = this.#controller.write(chunk);
    if (this.#waiting) this.#backlog += chunk.byteLength;
    else if (typeof written !== 'number') {
      this.#waiting = true;
      this.#backlog = chunk.byteLength;
      void written.then(() => this.#drained(), () => this.#drained());
    }
  }
  #drained(): void {
    this.#waiting = false;
    this.#backlog = 0;
  }
  close(): void {
    if (this.#done || this.#closing) return;
    this.#closing = true;
    if (this.#controller === undefined) return; // pull() sends what is pending, then closes
    this.flush();
    this.#controller.close();
  }
  buffered(): number {
    return this.#waiting ? this.#backlog + this.#pendingBytes : 0;
  }
}

// Bodies written to in the current task, flushed together once it ends.
const unflushed: DirectEventBody[] = [];
function flushAll(): void {
  for (const body of unflushed.splice(0)) body.flush();
}
