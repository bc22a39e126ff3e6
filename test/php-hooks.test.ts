/**
 * The PHP side of backend hooks, run by the real PHP CLI behind its built-in web
 * server, for a two-instance cluster: clients/php/examples/webhook.php receives
 * the webhooks (Pgmesh\Webhook::verify and ::events), rpc.php answers clients'
 * `rpc` ops, and both refuse what pgmesh did not sign (a tampered body, an old
 * timestamp, no signature).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '../src/hooks/signature.ts';
import { startCluster, type Instance } from './harness/cluster.ts';
import { hasPhp } from './harness/php.ts';
import { onChannel } from './harness/ws-client.ts';
import { pollUntil } from './harness/waiter.ts';

const SECRET = 'php-hooks-secret-0123456789';
const ROOT = join(import.meta.dir, '..');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** `php -S` serving one script for every path. */
async function phpServer(script: string, env: Record<string, string> = {}): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn('php', ['-S', `127.0.0.1:${port}`, script], { cwd: ROOT, env: { ...process.env, MESH_WEBHOOK_SECRET: SECRET, ...env }, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}/`;
  await pollUntil(async () => (await fetch(url, { method: 'POST' }).catch(() => null)) !== null, 10_000, 'php -S answering');
  return { url, process: child };
}

describe.skipIf(!hasPhp)('PHP backend hooks', async () => {
  const eventLog = join(mkdtempSync(join(tmpdir(), 'pgmesh-php-hooks-')), 'events.jsonl');
  const rpc = hasPhp ? await phpServer('clients/php/examples/rpc.php') : null;
  const hooks = hasPhp ? await phpServer('clients/php/examples/webhook.php', { WEBHOOK_LOG: eventLog }) : null;
  afterAll(() => {
    rpc?.process.kill();
    hooks?.process.kill();
  });
  const cluster = hasPhp ? await startCluster(['bun', 'node'], { env: { MESH_RPC_URL: rpc!.url, MESH_WEBHOOK_URL: hooks!.url, MESH_WEBHOOK_SECRET: SECRET } }) : null;
  /** The events webhook.php has written, once each by id. */
  const logged = () => {
    const lines = existsSync(eventLog) ? readFileSync(eventLog, 'utf8').split('\n').filter((l) => l !== '') : [];
    const seen = new Map<string, { type: string; uid?: string; channel?: string; connection?: string; reason?: string }>();
    for (const line of lines) {
      const event = JSON.parse(line);
      seen.set(event.id, event);
    }
    return [...seen.values()];
  };

  test('webhook.php receives every event of a session, verified and parsed by Pgmesh\\Webhook', async () => {
    const [a, b] = cluster!.instances as [Instance, Instance];
    const onA = await a.login('php-hooked');
    const connection = (onA.frames.find((f) => (f as { op?: string }).op === 'auth') as { connection: string }).connection;
    expect(await onA.request({ op: 'subscribe', channels: ['room_php'] })).toMatchObject({ success: true });
    const onB = await b.login('php-hooked');
    // Presence (and so user_online/offline) follows what the instances have written: let B's connection be written first.
    await pollUntil(async () => logged().filter((e) => e.type === 'connect' && e.uid === 'php-hooked').length === 2, 20_000, "B's connect in the PHP log");
    onA.close();
    onB.close();
    await pollUntil(async () => logged().some((e) => e.type === 'user_offline' && e.uid === 'php-hooked'), 20_000, 'user_offline in the PHP log');
    const mine = logged().filter((e) => e.uid === 'php-hooked' || e.channel === 'room_php');
    expect(mine.filter((e) => e.connection === connection).map((e) => e.type)).toEqual(['connect', 'subscribe', 'disconnect']);
    expect(mine.filter((e) => !e.connection).map((e) => e.type).sort()).toEqual(['channel_occupied', 'channel_vacated', 'user_offline', 'user_online']);
    expect(mine.find((e) => e.type === 'disconnect' && e.connection === connection)).toMatchObject({ reason: 'client_closed' });
  }, 60_000);

  test('rpc.php answers a client on one instance, and its message reaches a client on the other', async () => {
    const [a, b] = cluster!.instances as [Instance, Instance];
    const watcher = await b.login('php-watcher', 'format=envelope');
    expect(await watcher.request({ op: 'subscribe', channels: ['room_orders'] })).toMatchObject({ success: true });
    const buyer = await a.login('php-buyer');
    const placed = (await buyer.request({ op: 'rpc', method: 'order.place', data: { sku: 'A1', qty: 2 }, rid: 1 })) as { result: { order: number } };
    expect(placed).toMatchObject({ op: 'rpc', rid: 1, success: true, result: { sku: 'A1', qty: 2 } });
    expect(await watcher.next(onChannel('room_orders'))).toMatchObject({ data: `order ${placed.result.order} placed by php-buyer` });
    expect(await buyer.request({ op: 'rpc', method: 'order.place', data: { sku: 'A1', qty: 0 }, rid: 2 })).toMatchObject({
      success: false,
      reason: 'ERR_RPC_REFUSED',
      error: 'qty must be at least 1',
      rpc: { code: 'BAD_QTY' },
    });
    expect(await buyer.request({ op: 'rpc', method: 'order.cancel', rid: 3 })).toMatchObject({ success: false, reason: 'ERR_RPC_REFUSED', rpc: { code: 'UNKNOWN_METHOD' } });
  }, 60_000);

  test('Webhook::verify takes a good signature and refuses a tampered body, an old timestamp and none', async () => {
    const unsigned = await fetch(hooks!.url, { method: 'POST', body: JSON.stringify({ events: [{ id: 'forged', type: 'user_offline', uid: 'php-hooked', at: 0 }] }) });
    expect(unsigned.status).toBe(401);
    expect(logged().some((e) => (e as { id?: string }).id === 'forged')).toBe(false);
    const body = JSON.stringify({ method: 'order.place', data: { sku: 'B2', qty: 1 }, uid: 'u1', connection: 'x.1', instance: 'x' });
    const post = (headers: Record<string, string>, text = body) => fetch(rpc!.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text });
    const good = await post({ 'pgmesh-signature': sign(SECRET, body) });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ result: { sku: 'B2', qty: 1 } });
    expect((await post({ 'pgmesh-signature': sign(SECRET, body) }, body.replace('"qty":1', '"qty":9'))).status).toBe(401);
    expect((await post({ 'pgmesh-signature': sign(SECRET, body, Date.now() - 10 * 60_000) })).status).toBe(401);
    expect((await post({ 'pgmesh-signature': sign('another-secret-0123456789', body) })).status).toBe(401);
    expect((await post({})).status).toBe(401);
  });
});
