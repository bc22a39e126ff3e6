/**
 * The store interface: the durable outbox every message goes through, the
 * live feed that hands committed messages to the hub in id order (the
 * backplane), and the per-user cursors for offline delivery.
 */
import type { Message } from '../core/message.ts';
import type { MessageLog, NewMessage } from '../core/message-log.ts';

export type { NewMessage };

/** Receives committed messages, contiguous and in id order. */
export type FeedListener = (batch: readonly Message[]) => void;

/** Told what the store does, for metrics; called once per publish call, commit, notification or flush. */
export interface StoreObserver {
  /** A publish of `count` messages committed, `seconds` after it reached the store. */
  published(count: number, seconds: number): void;
  /** One commit carried `size` messages. */
  committed(size: number): void;
  /** A notification brought `count` messages, `lagSeconds` after their commit (by the database's clock). */
  arrived(count: number, lagSeconds: number): void;
  /** Per-user cursor rows written. */
  cursorsWritten(rows: number): void;
  /** A publish the database refused for its data (the others of its group went through). */
  refused(): void;
}

export interface Store extends MessageLog {
  /** Which implementation this is, for logs and /healthz. */
  readonly kind: 'postgres' | 'pglite';
  /** Whether cross-instance notifications are arriving (false: the store is polling). */
  readonly listening: boolean;
  /** Applies migrations, starts listening and catches up. */
  start(): Promise<void>;
  /** The last `limit` messages of a channel up to the head, oldest first, and that head. */
  recent(channel: string, limit: number): Promise<{ messages: Message[]; head: number }>;
  /** Registers the consumer of the live feed (the hub). */
  onMessages(listener: FeedListener): void;
  /** The id of the first Mercure update that carries `eventId` as its own id (a Last-Event-ID to resume from), or null. */
  findMercureEvent(eventId: string): Promise<number | null>;
  /** Resolves when the database answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
