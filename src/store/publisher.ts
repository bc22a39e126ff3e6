/**
 * Publishing into the outbox: publishes grouped into shared statements
 * (group commit) that store them with gap-free ids and NOTIFY, and the answer
 * of a statement whose reply was lost found out by its token. The store
 * publishes through one; so does the publish thread (MESH_PUBLISH_PORT), on a
 * connection of its own.
 */
import { MeshError } from '../core/errors.ts';
import type { NewMessage } from '../core/message-log.ts';
import { OutcomeUnknown, isDataError, type SqlDriver } from './driver.ts';
import { GroupCommit } from './group-commit.ts';
import { PUBLISH_SQL, PUBLISH_WITH_HOOKS_SQL } from './statements.ts';
import type { StoreObserver } from './store.ts';
import type { WebhookTargets } from './webhooks.ts';

// NOTIFY payloads must stay under 8000 bytes; leave room for the id range around the bodies.
const INLINE_LIMIT = 7800;

export interface PublisherOptions {
  /** Messages waiting for a commit past which publishes are refused (ERR_UNAVAILABLE), not queued. */
  maxQueued?: number;
  /** Group concurrent publishes into shared statements (default); off only to measure what it buys. */
  groupCommit?: boolean;
  /** How long to keep asking whether a publish whose answer was lost committed. */
  resolveBudgetMs?: number;
  /** Told of publishes, commits and refusals (metrics). */
  observer?: Pick<StoreObserver, 'published' | 'committed' | 'refused'>;
  /** The webhook targets a message's hook may be written for, with their bounds (without it: any, unbounded). */
  hooks?: WebhookTargets;
  /** Each committed batch, first id first, once the database has answered (the store hands it to its feed). */
  onCommitted?: (from: number, items: readonly NewMessage[]) => void;
}

const encoder = new TextEncoder();

/** Commits publishes to the outbox; resolves each with its ids. */
export class SqlPublisher {
  readonly #db: SqlDriver;
  readonly #options: PublisherOptions;
  readonly #commits: GroupCommit<NewMessage>;

  constructor(db: SqlDriver, options: PublisherOptions) {
    this.#db = db;
    this.#options = options;
    this.#commits = new GroupCommit<NewMessage>({
      commit: (items) => this.#commit(items),
      maxItems: 1000,
      maxBytes: 4 * 1024 * 1024,
      maxQueued: options.maxQueued ?? 100_000,
      size: (m) => m.data.length + m.channel.length + 16,
      // Publishes go down one pipelined connection (queryInOrder), so groups may overlap.
      maxInFlight: 32,
      overlapAfterMs: 10,
      splitOn: isRefusedData,
    });
  }

  /** Appends messages; resolves with their ids once committed (ERR_UNAVAILABLE, ERR_DATA_REFUSED, ERR_OUTCOME_UNKNOWN otherwise). */
  publish(messages: readonly NewMessage[]): Promise<number[]> {
    const committed =
      this.#options.groupCommit === false
        ? this.#commit([...messages])
        : this.#commits.add(messages, () => new MeshError('ERR_UNAVAILABLE', 'store unavailable: too many publishes waiting for the database'));
    const observer = this.#options.observer;
    if (observer === undefined) return committed;
    const started = performance.now();
    return committed.then(
      (ids) => {
        observer.published(ids.length, (performance.now() - started) / 1000);
        return ids;
      },
      (err: unknown) => {
        if (isRefusedData(err)) observer.refused();
        throw err;
      },
    );
  }

  async #commit(items: NewMessage[]): Promise<number[]> {
    const bodies = JSON.stringify(items.map((m) => (m.exclude?.length ? [m.channel, m.data, m.sender, m.exclude] : [m.channel, m.data, m.sender])));
    // A UTF-16 unit is at most 3 UTF-8 bytes: most batches are known to fit without encoding them.
    const inline = bodies.length * 3 <= INLINE_LIMIT || (bodies.length <= INLINE_LIMIT && encoder.encode(bodies).length <= INLINE_LIMIT);
    const token = crypto.randomUUID();
    const bounds = this.#options.hooks?.bounds();
    const hooks = items.flatMap((m) => (m.hook ? [[m.hook.target, m.hook.event, bounds?.[m.hook.target] ?? null]] : []));
    let to: number;
    try {
      const rows = await (hooks.length === 0
        ? this.#db.queryInOrder(PUBLISH_SQL, [bodies, items.length, inline, token])
        : this.#db.queryInOrder(PUBLISH_WITH_HOOKS_SQL, [bodies, items.length, inline, token, JSON.stringify(hooks)]));
      to = Number(rows[0]!.last_id);
      if (hooks.length > 0) this.#tellHooks(hooks, JSON.parse(rows[0]!.hooked as string) as Record<string, number>);
    } catch (err) {
      // The edge refuses what Postgres cannot hold; should something still get through, it is the caller's 400, not everyone's 503.
      if (isDataError(err)) throw new MeshError('ERR_DATA_REFUSED', 'the database refused this message\'s data: nothing was stored', { cause: err });
      if (!(err instanceof OutcomeUnknown)) throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: publish not committed', { cause: err });
      to = await this.#resolve(token, err);
      // Committed, its answer lost: how many of its hooks were taken is not known; the senders look anyway.
      if (hooks.length > 0) this.#tellHooks(hooks, null);
    }
    this.#options.observer?.committed(items.length);
    const from = to - items.length + 1;
    this.#options.onCommitted?.(from, items);
    return items.map((_, i) => from + i);
  }

  /** Tells the webhook targets what a publish wrote for them (`written` null: unknown, taken as all). */
  #tellHooks(hooks: unknown[][], written: Record<string, number> | null): void {
    const produced = new Map<string, number>();
    for (const [target] of hooks) produced.set(target as string, (produced.get(target as string) ?? 0) + 1);
    for (const [target, n] of produced) this.#options.hooks?.wrote(target, n, written === null ? n : (written[target] ?? 0));
  }

  /**
   * The answer to a publish was lost: find out whether it committed, by its token, once the
   * server has surely finished with it. Committed: its last id. Not: ERR_UNAVAILABLE (nothing
   * stored). No answer from the database within the budget: ERR_OUTCOME_UNKNOWN, never "failed".
   */
  async #resolve(token: string, lost: OutcomeUnknown): Promise<number> {
    const giveUpAt = lost.settledBy + (this.#options.resolveBudgetMs ?? 30_000);
    await sleep(Math.max(0, lost.settledBy - Date.now()));
    for (;;) {
      try {
        const rows = await this.#db.query('select last_id from mesh_publish_log where token = $1::uuid', [token]);
        if (rows.length > 0) return Number(rows[0]!.last_id);
        throw new MeshError('ERR_UNAVAILABLE', 'store unavailable: publish not committed', { cause: lost });
      } catch (err) {
        if (err instanceof MeshError) throw err;
        if (Date.now() >= giveUpAt) {
          throw new MeshError('ERR_OUTCOME_UNKNOWN', 'the database stopped answering during the commit: the message may or may not be stored', { cause: err });
        }
        await sleep(500);
      }
    }
  }
}

/** Whether a publish failed for its own data (ERR_DATA_REFUSED), not for the database. */
export function isRefusedData(err: unknown): boolean {
  return err instanceof MeshError && err.code === 'ERR_DATA_REFUSED';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
