/**
 * Reads that arrive together go as one statement. In a connect or reconnect
 * storm every client looks up its cursor and reads its own channel's history:
 * two statements each, and Postgres and the driver spent more on the statements
 * than on the (mostly empty) results. Like group commit, the first read goes at
 * once and reads arriving while `maxInFlight` are out wait and go together next,
 * so a quiet instance adds no latency.
 */

interface Waiting<K, V> {
  key: K;
  resolve: (value: V) => void;
  reject: (err: unknown) => void;
}

export interface ReadBatchOptions<K, V> {
  /** Reads every key in one statement; returns one value per key, in the keys' order. */
  load: (keys: K[]) => Promise<V[]>;
  /** Most keys per statement. */
  maxKeys: number;
  /** Statements out at once. */
  maxInFlight: number;
  /** Whether a failure is one key's data, not the database's: each key is then read alone, and only its own read fails. */
  isKeyFault: (err: unknown) => boolean;
}

/** Coalesces single-key reads into batched ones. */
export class ReadBatch<K, V> {
  readonly #o: ReadBatchOptions<K, V>;
  #queue: Waiting<K, V>[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(options: ReadBatchOptions<K, V>) {
    this.#o = options;
  }

  /** Resolves with the value of `key`, read with the others waiting. */
  read(key: K): Promise<V> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ key, resolve, reject });
      if (this.#scheduled) return;
      // On the next microtask: the reads one callback makes (a subscribe to several channels) go together.
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#dispatch();
      });
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#o.maxInFlight) {
      const group = this.#queue.splice(0, this.#o.maxKeys);
      this.#inFlight++;
      void this.#send(group).finally(() => {
        this.#inFlight--;
        this.#dispatch();
      });
    }
  }

  async #send(group: Waiting<K, V>[]): Promise<void> {
    try {
      const values = await this.#o.load(group.map((w) => w.key));
      group.forEach((w, i) => w.resolve(values[i]!));
    } catch (err) {
      if (group.length === 1 || !this.#o.isKeyFault(err)) {
        for (const w of group) w.reject(err);
        return;
      }
      await Promise.all(
        group.map(async (w) => {
          try {
            w.resolve((await this.#o.load([w.key]))[0]!);
          } catch (alone) {
            w.reject(alone);
          }
        }),
      );
    }
  }
}
