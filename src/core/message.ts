/**
 * A message as it leaves the outbox, and the frames it is delivered as.
 *
 * A message published by an application server (`sender` null) carries the
 * connmix `d` string, delivered verbatim. A message published by a client op
 * carries the JSON text of its data and is delivered as a connmix event frame.
 * Each frame is built once per message and shared by every subscriber.
 */

/** How a connection wants messages framed: connmix-compatible, or the bundled client's envelope. */
export type DeliveryFormat = 'raw' | 'envelope';

/** One stored message, as the store hands it over. */
export interface MessageRecord {
  readonly id: number;
  readonly channel: string;
  /** The `d` string (sender null), or the JSON text of a client's data. */
  readonly data: string;
  /** The uid of the client that published it; null for the server API and SQL. */
  readonly sender: string | null;
  /** Connection ids this message must not reach; null for none. */
  readonly exclude?: readonly string[] | null;
}

/** A stored message with its delivery frames, serialised lazily and once. */
export class Message implements MessageRecord {
  #raw: string | undefined;
  #envelope: string | undefined;
  /** Encodings transports add (an SSE event's bytes, say), keyed by the transport's own key. */
  #memo: Map<object, unknown> | undefined;

  constructor(
    readonly id: number,
    readonly channel: string,
    readonly data: string,
    readonly sender: string | null,
    readonly exclude: readonly string[] | null = null,
  ) {}

  static from(r: MessageRecord): Message {
    return r instanceof Message ? r : new Message(r.id, r.channel, r.data, r.sender, r.exclude ?? null);
  }

  /** The text frame for a connection of this format. */
  frame(format: DeliveryFormat): string {
    if (format === 'raw') return (this.#raw ??= this.#rawFrame(this.channel));
    return (this.#envelope ??= this.#envelopeFrame(this.channel));
  }

  /** The frame naming the channel as `name` (a connmix `user_<uid>` subscription): built per call, never shared. */
  frameAs(format: DeliveryFormat, name: string): string {
    if (name === this.channel) return this.frame(format);
    return format === 'raw' ? this.#rawFrame(name) : this.#envelopeFrame(name);
  }

  /** A transport's own encoding of this message, built once per message whatever the number of subscribers. */
  memo<T>(key: object, build: (message: Message) => T): T {
    this.#memo ??= new Map();
    let value = this.#memo.get(key) as T | undefined;
    if (value === undefined) this.#memo.set(key, (value = build(this)));
    return value;
  }

  #rawFrame(channel: string): string {
    if (this.sender === null) return this.data;
    return `{"event":"subscribe","channel":${JSON.stringify(channel)},"data":${this.data},"uid":${JSON.stringify(this.sender)},"id":${this.id}}`;
  }

  #envelopeFrame(channel: string): string {
    const data = this.sender === null ? JSON.stringify(this.data) : this.data;
    const uid = this.sender === null ? '' : `,"uid":${JSON.stringify(this.sender)}`;
    return `{"event":"message","channel":${JSON.stringify(channel)},"id":${this.id},"data":${data}${uid}}`;
  }
}
