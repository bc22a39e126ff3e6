/**
 * Any instance answers any request: an SSE client behind a round-robin balancer
 * (no stickiness) whose uplink POSTs land on each of three instances in turn gets
 * exactly the replies and deliveries it gets from one instance. On Fly, a
 * non-owner answers with fly-replay instead of relaying.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { startCluster } from './harness/cluster.ts';
import { startProcess } from './harness/process.ts';
import { roundRobin } from './harness/round-robin.ts';
import { openSse } from './harness/sse-client.ts';
import { token } from './harness/tokens.ts';

const { databaseUrl, instances } = await startCluster(['bun', 'node', 'deno']);
const balancer = roundRobin(instances.map((i) => i.url));
afterAll(() => balancer.stop());

/** The client's session through `base`: subscribe, publish, unsubscribe, publish again; what it was answered and what it got. */
async function script(base: string, uid: string): Promise<{ replies: unknown[]; deliveries: string[] }> {
  const jwt = await token(uid);
  const sse = openSse(`${base}/v1/sse?format=envelope`, { authorization: `Bearer ${jwt}` });
  try {
    const session = await sse.session();
    const replies: unknown[] = [];
    const send = async (frame: Record<string, unknown>) => {
      const res = await fetch(`${base}/v1/sse/${session}`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, body: JSON.stringify(frame) });
      expect(res.status).toBe(200);
      const { position: _p, id: _i, ...reply } = (await res.json()) as Record<string, unknown>;
      replies.push(reply);
    };
    const room = `room_rr_${uid}`;
    await send({ op: 'subscribe', channels: [room, `${room}_marker`] });
    await send({ op: 'sendtoroom', args: [room, 'hello through the balancer'] });
    await sse.next((e) => e.type === 'message' && e.data.includes('hello through the balancer'));
    await send({ op: 'unsubscribe', channels: [room] });
    await send({ op: 'sendtoroom', args: [room, 'after leaving'] });
    await send({ op: 'sendtoroom', args: [`${room}_marker`, 'marker'] });
    await sse.next((e) => e.type === 'message' && e.data.includes('"marker"'));
    const deliveries = sse.messages().map((m) => {
      const { channel, data } = JSON.parse(m) as { channel: string; data: string };
      return `${channel.replace(uid, '<uid>')}: ${data}`;
    });
    return { replies: JSON.parse(JSON.stringify(replies).replaceAll(uid, '<uid>')), deliveries };
  } finally {
    sse.close();
  }
}

describe('an SSE client behind a balancer with no stickiness', () => {
  test('its POSTs land on every instance, and it is answered and served exactly as by one instance', async () => {
    const alone = await script(instances[0]!.url, 'rr-alone');
    const before = balancer.log.length;
    const balanced = await script(balancer.url, 'rr-balanced');
    const posts = balancer.log.slice(before).filter((r) => r.method === 'POST');
    expect(posts.length).toBe(5);
    expect(new Set(posts.map((r) => r.upstream)).size).toBe(3);
    expect(balanced).toEqual(alone);
    expect(balanced.deliveries).toEqual(['room_rr_<uid>: hello through the balancer', 'room_rr_<uid>_marker: marker']);
  }, 60_000);
});

describe('on Fly (FLY_MACHINE_ID set)', () => {
  test("a POST for another machine's stream is answered with fly-replay naming it, once", async () => {
    const fly = await startProcess('bun', { DATABASE_URL: databaseUrl, FLY_MACHINE_ID: 'flym1' });
    try {
      const jwt = await token('fly-1');
      const post = (headers: Record<string, string> = {}) =>
        fetch(`${fly.url}/v1/sse/A.k3x9`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', ...headers }, body: '{"op":"ping"}' });
      const first = await post();
      expect(first.status).toBe(404);
      expect(first.headers.get('fly-replay')).toBe('instance=A');
      // A request Fly already replayed is never sent on again.
      const replayed = await post({ 'fly-replay-src': 'instance=flym0;region=fra;t=1' });
      expect(replayed.status).toBe(404);
      expect(replayed.headers.get('fly-replay')).toBeNull();
    } finally {
      await fly.stop('SIGKILL');
    }
  }, 60_000);
});
