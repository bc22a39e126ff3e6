// Types for public/mesh.js (`pgmesh/client`).

export interface ConnectOptions {
  /** http(s) base URL of the pgmesh server; default: the page's origin. */
  url?: string;
  /** A JWT, or a function returning one (called again on every reconnect). */
  token?: string | (() => string | Promise<string>);
  /** Channels to subscribe to, kept across reconnects; '@user' is the caller's own channel. */
  channels?: string[];
  transport?: 'auto' | 'websocket' | 'sse';
  /** Send cookies to a pgmesh on another origin over SSE (the server must list this page's origin in MESH_CORS_ORIGINS). */
  credentials?: boolean;
}

export interface MeshMessage {
  channel: string;
  id: number;
  data: unknown;
  /** The publishing user, for messages sent by clients. */
  uid?: string;
}

export interface Reply {
  op: string;
  success: boolean;
  [field: string]: unknown;
}

export type MeshState = 'idle' | 'connecting' | 'open' | 'fallback' | 'closed';

export declare class MeshClient extends EventTarget {
  constructor(options?: ConnectOptions);
  readonly state: MeshState;
  readonly transport: 'websocket' | 'sse' | null;
  readonly uid: string | null;
  /** Where the connection is, once open: its id, and the server instance and region holding it. */
  readonly where: { connection: string | null; instance: string | null; region: string | null };
  /** With presence: 'members' {channel, members}, then 'join' / 'leave' {channel, uid} events. */
  /** `since`: every message after this id comes first (a page that showed the history up to it). */
  subscribe(channel: string, options?: { presence?: boolean; since?: number }): Promise<Reply | null>;
  unsubscribe(channel: string): Promise<Reply | null>;
  publish(channel: string, data: unknown): Promise<Reply>;
  close(): void;
}

/** Opens a connection that reconnects and resumes by itself. */
export declare function connect(options?: ConnectOptions): MeshClient;
