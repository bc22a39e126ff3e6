/**
 * A message as it leaves the outbox, and the frames it is delivered as.
 *
 * A message published by an application server (`sender` null) carries the
 * connmix `d` string, delivered verbatim. A message published by a client op
 * carries the JSON text of its data and is delivered as a connmix event frame.
 * Each frame is built once per message and shared by every subscriber.
 */

/** How a connection wants messages framed: connmix-compatible or the bundled client's envelope, as a WebSocket text frame or an SSE event. */
export type DeliveryFormat = 'raw' | 'envelope' | 'sse' | 'sse-envelope';

/** One stored message, as the store hands it over. */
export interface MessageRecord {
  readonly id: number;
  readonly channel: string;
  /** The `d` string (sender null), or the JSON text of a client's data. */
  readonly data: string;
  /** The uid of the client that published it; null for the server API and SQL. */
  readonly sender: string | null;
}

/** A stored message with its delivery frames, serialised lazily and once. */
export class Message implements MessageRecord {
  #raw: string | undefined;
  #envelope: string | undefined;
  #sse: string | undefined;
  #sseEnvelope: string | undefined;

  constructor(
    readonly id: number,
    readonly channel: string,
    readonly data: string,
    readonly sender: string | null,
  ) {}

  static from(r: MessageRecord): Message {
    return r instanceof Message ? r : new Message(r.id, r.channel, r.data, r.sender);
  }

  /** The text frame for a connection of this format. */
  frame(format: DeliveryFormat): string {
    if (format === 'raw') return (this.#raw ??= this.#rawFrame());
    if (format === 'envelope') return (this.#envelope ??= this.#envelopeFrame());
    // Over SSE the data is the frame, with the id for Last-Event-ID.
    if (format === 'sse') return (this.#sse ??= `id: ${this.id}\n${sseData(this.frame('raw'))}\n`);
    return (this.#sseEnvelope ??= `id: ${this.id}\n${sseData(this.frame('envelope'))}\n`);
  }

  #rawFrame(): string {
    if (this.sender === null) return this.data;
    return `{"event":"subscribe","channel":${JSON.stringify(this.channel)},"data":${this.data},"uid":${JSON.stringify(this.sender)},"id":${this.id}}`;
  }

  #envelopeFrame(): string {
    const data = this.sender === null ? JSON.stringify(this.data) : this.data;
    const uid = this.sender === null ? '' : `,"uid":${JSON.stringify(this.sender)}`;
    return `{"event":"message","channel":${JSON.stringify(this.channel)},"id":${this.id},"data":${data}${uid}}`;
  }
}

/** The `data:` lines of an SSE event: one per line of the text, whatever its line breaks. */
export function sseData(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('');
}
