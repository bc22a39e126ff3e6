/**
 * The store interface: the durable outbox every message goes through, the
 * live feed that hands committed messages to the hub in id order (the
 * backplane), and the per-user cursors for offline delivery.
 */
import type { Message } from '../core/message.ts';

/** A message on its way into the outbox. */
export interface NewMessage {
  channel: string;
  /** The `d` string (sender null) or the JSON text of a client's data. */
  data: string;
  sender: string | null;
}

/** Receives committed messages, contiguous and in id order. */
export type FeedListener = (batch: readonly Message[]) => void;

export interface Store {
  /** Which implementation this is, for logs and /healthz. */
  readonly kind: 'postgres' | 'pglite';
  /** Whether cross-instance notifications are arriving (false: the store is polling). */
  readonly listening: boolean;
  /** Applies migrations, starts listening and catches up. */
  start(): Promise<void>;
  /** Appends messages to the outbox; resolves with their ids once committed. Rejects with ERR_UNAVAILABLE. */
  publish(messages: readonly NewMessage[]): Promise<number[]>;
  /** Up to `limit` messages on `channel` with id > `afterId`, in id order. */
  history(channel: string, afterId: number, limit: number): Promise<Message[]>;
  /** The last id the live feed has handed to the hub: a new subscription gets every message after it live. */
  readonly position: number;
  /** Ids up to this one may have been deleted by retention. */
  expiredUpTo(): Promise<number>;
  /** Registers the consumer of the live feed (the hub). */
  onMessages(listener: FeedListener): void;
  /** The last id this user's client saw on `channel`, or null when none is recorded. */
  cursor(uid: string, channel: string): Promise<number | null>;
  /** Moves a cursor forward; written in batches, not per call. */
  advanceCursor(uid: string, channel: string, id: number): void;
  /** Writes pending cursor moves now. */
  flushCursors(): Promise<void>;
  /** Resolves when the database answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
