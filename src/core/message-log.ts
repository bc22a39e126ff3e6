/**
 * What the op dispatcher needs from the durable message log (the store
 * implements it): publish, read back, and the per-user cursors. Declared here
 * so that core/ depends on an interface, never on store/.
 */
import type { Message } from './message.ts';

/** A message on its way into the outbox. */
export interface NewMessage {
  channel: string;
  /** The `d` string (sender null) or the JSON text of a client's data. */
  data: string;
  sender: string | null;
  /** Connection ids the message must not reach. */
  exclude?: readonly string[] | null;
  /** A webhook event to queue for `target` in the same transaction (a Pusher client_event): both are stored, or neither. */
  hook?: { target: string; event: Record<string, unknown> };
}

export interface MessageLog {
  /** Appends messages; resolves with their ids once committed. Rejects with ERR_UNAVAILABLE. */
  publish(messages: readonly NewMessage[]): Promise<number[]>;
  /** Up to `limit` messages on `channel` with id > `afterId`, in id order. */
  history(channel: string, afterId: number, limit: number): Promise<Message[]>;
  /** The last id handed to the hub: a new subscription gets every message after it live. */
  readonly position: number;
  /** The last id committed in the database (may be ahead of `position` for a moment). */
  head(): Promise<number>;
  /** Ids up to this one may have been deleted by retention. */
  expiredUpTo(): Promise<number>;
  /** The last id this user's client saw on `channel`, or null when none is recorded. */
  cursor(uid: string, channel: string): Promise<number | null>;
  /** Moves a cursor forward; written in batches, not per call. */
  advanceCursor(uid: string, channel: string, id: number): void;
  /** Writes pending cursor moves now. */
  flushCursors(): Promise<void>;
}
