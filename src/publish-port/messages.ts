/** What the instance and its publish thread say to each other. */

/** What the thread did since it last said: each publish's size and seconds, each commit's size, refusals, error answers by code, bugs. */
export interface PublishTally {
  published: [count: number, seconds: number][];
  committed: number[];
  refused: number;
  errors: Record<string, number>;
  /** Exceptions and rejections nothing caught (bugs), logged by the thread and gone past. */
  uncaught: ('rejection' | 'exception')[];
}

export type FromPublishThread =
  | { type: 'listening'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'tally'; tally: PublishTally }
  | { type: 'stopped' };

export type ToPublishThread = { type: 'stop' };
