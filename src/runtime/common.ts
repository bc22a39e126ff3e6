/** Pieces two or three runtime adapters share; still runtime code, so it lives here. */
import { Worker } from 'node:worker_threads';
import type { EventBody, EventBodyOwner, RawSocket, Thread, UncaughtHandler } from './adapter.ts';

interface StandardWebSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  bufferedAmount: number;
}

/** A WHATWG-style socket (Deno's WebSocket, and `ws` on Node, which has the same surface); a class, so no closures per connection. */
export class StandardSocket implements RawSocket {
  constructor(readonly raw: StandardWebSocket) {}
  send(text: string): void {
    this.raw.send(text);
  }
  close(code: number, reason: string): void {
    this.raw.close(code, reason);
  }
  buffered(): number {
    return this.raw.bufferedAmount;
  }
}

/** Calls `handler` once, on whichever of SIGINT and SIGTERM comes first (Fly sends SIGINT, then SIGTERM). */
export function onFirstSignal(listen: (signal: 'SIGINT' | 'SIGTERM', fire: () => void) => void, handler: (signal: string) => void): void {
  let fired = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    listen(signal, () => {
      if (fired) return;
      fired = true;
      handler(signal);
    });
  }
}

/** The uncaught-error guard where `process` has Node's events (Node and Bun): a listener keeps the process alive. */
export function onUncaughtProcess(handler: UncaughtHandler): void {
  process.on('unhandledRejection', (reason) => handler('rejection', reason));
  process.on('uncaughtException', (err) => handler('exception', err));
}

/** The uncaught-error guard of the web platform (Deno): the events are cancelled, so the process goes on. */
export function onUncaughtWeb(handler: UncaughtHandler): void {
  globalThis.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    handler('rejection', (event as PromiseRejectionEvent).reason);
  });
  globalThis.addEventListener('error', (event) => {
    event.preventDefault();
    handler('exception', (event as ErrorEvent).error);
  });
}

/** What a queued event body holds before it tells the writer to wait (the WHATWG stream's high-water mark). */
const HIGH_WATER = 64 * 1024;

/**
 * An event body as a standard ReadableStream with a byte-counting queue (Node and Deno).
 * The object is its own underlying source and its own abort listener, so a stream adds no
 * closures. Until the response is handed over, a departed client shows only as the request's
 * abort; after, as the stream's cancel — and the listener goes, as it would keep the whole
 * request alive for the life of the stream.
 */
export class QueuedEventBody implements EventBody {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #done = false;
  #request: Request | undefined;

  constructor(
    readonly owner: EventBodyOwner,
    request: Request,
  ) {
    this.body = new ReadableStream<Uint8Array>(this, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER }));
    this.#request = request;
    request.signal.addEventListener('abort', this);
  }
  handleEvent(): void {
    this.cancel();
  }
  handedOver(): void {
    this.#request?.signal.removeEventListener('abort', this);
    this.#request = undefined;
  }
  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
  }
  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.owner.cancelled();
  }
  write(bytes: Uint8Array): void {
    if (this.#done) return;
    try {
      this.#controller.enqueue(bytes);
    } catch {
      this.cancel(); // the stream was torn down under us
    }
  }
  close(): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#controller.close();
    } catch {
      // already closed by the client
    }
  }
  buffered(): number {
    return Math.max(0, HIGH_WATER - (this.#controller.desiredSize ?? 0));
  }
}

/** A thread on node:worker_threads, which Bun and Deno implement too; `worker` already started. */
export function workerThread(worker: Worker): Thread {
  // An error the thread's own guard let through ends the thread; its exit says so to whoever started it.
  worker.on('error', () => {});
  return {
    post: (message) => worker.postMessage(message),
    onMessage: (handler) => void worker.on('message', handler),
    onExit: (handler) => void worker.once('exit', handler),
    terminate: async () => void (await worker.terminate()),
  };
}

/** Starts a module on a thread where the runtime itself runs TypeScript (Bun, Deno). */
export function startModuleThread(entry: URL, data: unknown): Thread {
  return workerThread(new Worker(entry, { workerData: data }));
}
