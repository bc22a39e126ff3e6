/**
 * What every long-lived event stream shares, whichever dialect writes its events
 * (pgmesh's SSE, Mercure's): the runtime's body, the session it is, and its end,
 * once, whether the server or the client ends it.
 */
import type { Gateway } from '../core/gateway.ts';
import type { Session } from '../core/session.ts';
import type { EventBody, EventBodyOwner, RuntimeAdapter } from '../runtime/adapter.ts';

export abstract class EventStreamSink implements EventBodyOwner {
  readonly out: EventBody;
  session: Session | undefined;
  done = false;
  /** Runs once when the stream ends. */
  onEnd: (() => void) | undefined;

  constructor(
    /** The open streams of this kind (their heartbeat's list): a stream leaves it when it ends. */
    readonly streams: Set<EventStreamSink>,
    readonly gateway: Gateway,
    runtime: RuntimeAdapter,
    request: Request,
  ) {
    this.out = runtime.eventBody(this, request);
  }

  buffered(): number {
    return this.out.buffered();
  }

  /** The client went away (the runtime's body noticed). */
  cancelled(): void {
    this.finish();
  }

  /** The stream is over (closed by either side): forget it and tear its session down. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.streams.delete(this);
    if (this.session) this.gateway.close(this.session);
    this.onEnd?.();
  }
}

/** One timer beats every open stream of a kind (the same bytes to each), not one timer per stream. */
export class Heartbeat {
  /** The streams it beats; a stream leaves when it ends. */
  readonly streams = new Set<EventStreamSink>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly everyMs: number,
    readonly bytes: Uint8Array,
  ) {}

  /** Beats `stream` from now on, until it ends. */
  add(stream: EventStreamSink): void {
    if (stream.done) return;
    this.streams.add(stream);
    this.#timer ??= setInterval(() => this.#beat(), this.everyMs);
  }

  #beat(): void {
    for (const stream of this.streams) stream.out.write(this.bytes);
    if (this.streams.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
