/**
 * What the rest of pgmesh needs from a runtime, and nothing more. Each of
 * node.ts, bun.ts and deno.ts implements it; only this folder knows which
 * runtime it is on.
 */
import type { Context } from 'hono';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';

export interface ServeOptions {
  port: number;
  hostname: string;
  /** Largest WebSocket frame accepted; larger ones close the socket with 1009. */
  maxFrame: number;
  /** Unread bytes per WebSocket past which the runtime may drop the client. */
  maxBuffered: number;
}

export interface RunningServer {
  /** The port actually bound (differs from the requested one when that was 0). */
  port: number;
  /** Stops accepting and closes the listener. */
  stop(): Promise<void>;
  /** Native fan-out to this server's sockets subscribed to a topic (RawSocket.topics), where the runtime has one. */
  broadcast?: (topic: string, frame: string) => void;
}

/** A just-opened WebSocket as the runtime gives it: text out, close, the unsent byte count, native topics where the runtime has them. */
export interface RawSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
  /**
   * Closes with `code` and reads nothing more: for a client flooding us, whose frames already on the
   * way would otherwise still be read and parsed. Where the runtime cannot stop reading, absent.
   */
  cutOff?(code: number, reason: string): void;
  buffered(): number;
  topics?: {
    subscribe(topic: string): void;
    unsubscribe(topic: string): void;
  };
}

/** A response body written as things happen (an SSE stream): the transport writes, the runtime sends. */
export interface EventBody {
  readonly body: ReadableStream<Uint8Array>;
  /** Queues bytes for the client; after close() or the client's disconnect, a no-op. */
  write(bytes: Uint8Array): void;
  close(): void;
  /** Bytes written but not yet taken by the client, as far as the runtime tells. */
  buffered(): number;
  /** The response carrying the body is being returned (the body's own cancel reports a departure from now on). */
  handedOver(): void;
}

/** Who is told that an event body's client went away (an object, so a stream needs no closure). */
export interface EventBodyOwner {
  cancelled(): void;
}

/** A thread of this process running one of pgmesh's modules; they talk by messages (structured clones). */
export interface Thread {
  post(message: unknown): void;
  onMessage(handler: (message: unknown) => void): void;
  /** Runs once when the thread has ended, whether it stopped, failed or was terminated. */
  onExit(handler: (code: number) => void): void;
  /** Ends the thread at once. */
  terminate(): Promise<void>;
}

/** Told of an error nothing caught: a bug, logged and counted; the process goes on serving everyone else. */
export type UncaughtHandler = (kind: 'rejection' | 'exception', err: unknown) => void;

export interface RuntimeAdapter {
  readonly name: 'node' | 'bun' | 'deno';
  /** The runtime's own version (e.g. 20.11.1), for the operator's console. */
  readonly version: string;
  readonly upgradeWebSocket: UpgradeWebSocket<any>;
  /**
   * Whether a WebSocket upgrade may wait for its turn after its request arrived (see TurnGate). Deno
   * cannot tell that the client hung up meanwhile: the socket it upgrades then never opens nor closes,
   * and the server's shutdown waits on it forever. There the upgrade happens at once.
   */
  readonly upgradesLate: boolean;
  /** The raw socket under Hono's WSContext, with this runtime's buffered-amount reading. */
  socket(ws: WSContext<any>): RawSocket;
  /** The peer's IP address. */
  remoteAddress(c: Context): string | undefined;
  /** Keeps a long-lived HTTP response (an SSE stream) from the runtime's idle timeout. */
  keepOpen(c: Context): void;
  /**
   * A body for a long-lived response to `request`; `owner.cancelled()` runs once if the client
   * goes away, from the moment the body is made (while the response is still being prepared, too).
   */
  eventBody(owner: EventBodyOwner, request: Request): EventBody;
  serve(fetch: (request: Request, ...rest: any[]) => Response | Promise<Response>, options: ServeOptions): Promise<RunningServer>;
  /** Starts `entry` (a module of src/) on a thread of its own; it reads `data` as node:worker_threads' workerData. */
  startThread(entry: URL, data: unknown): Thread;
  /** Runs `handler` once on SIGINT or SIGTERM. */
  onShutdownSignal(handler: (signal: string) => void): void;
  /** Hands every exception and rejection nothing caught to `handler`, instead of ending the process. */
  onUncaught(handler: UncaughtHandler): void;
}
