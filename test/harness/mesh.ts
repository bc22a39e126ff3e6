/**
 * Starts a real pgmesh instance in this process (the runtime bun:test runs on),
 * on a free port, with an in-memory PGlite store unless told otherwise.
 */
import { afterAll } from 'bun:test';
import { loadConfig } from '../../src/config.ts';
import { startMesh, type RunningMesh } from '../../src/server.ts';
import { TEST_SECRET, token } from './tokens.ts';
import { connect, type WsClient } from './ws-client.ts';
import { createWaiter } from './waiter.ts';

export interface TestMesh extends RunningMesh {
  wsUrl: string;
  /** Opens a WebSocket to `path` (default /v1/ws) with an optional query string. */
  connect(query?: string, path?: string): Promise<WsClient>;
  /** Connects and authenticates as `uid` with the connmix `args` dialect. */
  login(uid: string, claims?: Record<string, unknown>, query?: string): Promise<WsClient>;
  /** Resolves once the session with this connection id has been torn down on the server. */
  sessionClosed(id: string, timeoutMs?: number): Promise<void>;
  /** POSTs to the server API. */
  publish(body: unknown, headers?: Record<string, string>): Promise<Response>;
}

/** Starts an instance; it is stopped after the test file's last test. */
export async function startTestMesh(env: Record<string, string> = {}, options: { stopAfterAll?: boolean; expiryHorizonMs?: number } = {}): Promise<TestMesh> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    MESH_DATA_DIR: 'memory://',
    JWT_SECRET: TEST_SECRET,
    MESH_LOG: 'silent',
    ...env,
  });
  const gone = new Set<string>();
  const waiter = createWaiter();
  const mesh = await startMesh(config, {
    expiryHorizonMs: options.expiryHorizonMs,
    observers: [{ authenticated() {}, subscribed() {}, unsubscribed() {}, closed: (s) => (gone.add(s.id), waiter.wake()) }],
  });
  const wsUrl = mesh.url.replace('http', 'ws');
  const clients: WsClient[] = [];
  const test: TestMesh = {
    ...mesh,
    wsUrl,
    async connect(query = '', path = '/v1/ws') {
      const client = await connect(`${wsUrl}${path}${query ? `?${query}` : ''}`);
      clients.push(client);
      return client;
    },
    async login(uid, claims = {}, query = '') {
      const client = await test.connect(query);
      const reply = await client.request({ op: 'auth', args: [await token(uid, claims)] });
      if (reply.success !== true) throw new Error(`login failed: ${JSON.stringify(reply)}`);
      return client;
    },
    sessionClosed: (id, timeoutMs = 5000) => waiter.until(() => gone.has(id), timeoutMs, () => `session ${id} still open after ${timeoutMs} ms`),
    publish: (body, headers = {}) =>
      fetch(`${mesh.url}/v1/mesh/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    async stop() {
      for (const c of clients) c.close();
      await mesh.stop();
    },
  };
  if (options.stopAfterAll !== false) afterAll(() => test.stop());
  return test;
}
