/** An EventSource test client (the `eventsource` package, a WHATWG implementation) that keeps every event. */
import { EventSource } from 'eventsource';
import { createWaiter } from './waiter.ts';

export interface SseEvent {
  type: string;
  data: string;
  id: string;
}

export interface SseClient {
  source: EventSource;
  events: SseEvent[];
  /** The id from the `session` event, once it came. */
  session(): Promise<string>;
  /** Waits for the first event, not yet taken, that matches. */
  next(match: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Waits until `done()` holds (re-checked on every event). */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  /** Messages (default `message` events) received so far, as data strings. */
  messages(): string[];
  close(): void;
}

const TYPES = ['message', 'session', 'expired', 'close'];

/** Opens an EventSource; `headers` go on every (re)connect request; `extraTypes` are event types to keep beside the usual ones. */
export function openSse(url: string, headers: Record<string, string> = {}, extraTypes: string[] = []): SseClient {
  const source = new EventSource(url, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }),
  });
  const events: SseEvent[] = [];
  const taken = new Set<number>();
  const waiter = createWaiter();
  for (const type of [...TYPES, ...extraTypes]) {
    source.addEventListener(type, (e) => {
      events.push({ type, data: e.data, id: e.lastEventId });
      waiter.wake();
    });
  }
  const until = (done: () => boolean, timeoutMs = 10_000) =>
    waiter.until(done, timeoutMs, () => `SSE condition not met within ${timeoutMs} ms; events: ${JSON.stringify(events.slice(-5))}`);
  const next = async (match: (e: SseEvent) => boolean, timeoutMs = 10_000) => {
    let found = -1;
    await until(() => {
      found = events.findIndex((e, i) => !taken.has(i) && match(e));
      return found >= 0;
    }, timeoutMs);
    taken.add(found);
    return events[found]!;
  };
  return {
    source,
    events,
    next,
    until,
    session: async () => JSON.parse(events.find((e) => e.type === 'session')?.data ?? (await next((e) => e.type === 'session')).data).session,
    messages: () => events.filter((e) => e.type === 'message').map((e) => e.data),
    close: () => source.close(),
  };
}
