/**
 * Presence's contract (Cluster: connections, subscriptions, member lists, the
 * join/leave events, reaping), run over both implementations: embedded PGlite
 * and a real Postgres server. Rows exist only for live connections, each
 * transition is one event, and what a reply promises is readable at once.
 */
import { describe, expect, test } from 'bun:test';
import type { ClusterOptions } from '../src/store/cluster.ts';
import { SqlCluster } from '../src/store/sql-cluster.ts';
import type { SqlDriver } from '../src/store/driver.ts';
import { STORE_IMPLEMENTATIONS, startedSubject, type StoreSubject } from './harness/stores.ts';

const TTL_MS = 15_000;

describe.each(STORE_IMPLEMENTATIONS)('presence (Cluster) on %s', (_name, make) => {
  /** A started store and a started cluster instance on it; both closed after the test. */
  async function presence(instance = 'i1', options: Partial<ClusterOptions> = {}): Promise<{ cluster: SqlCluster; subject: StoreSubject; errors: unknown[] }> {
    const subject = await startedSubject(make);
    return { ...(await member(subject.app, instance, options)), subject };
  }
  const clusters: SqlCluster[] = [];
  async function member(db: SqlDriver, instance: string, options: Partial<ClusterOptions> = {}): Promise<{ cluster: SqlCluster; errors: unknown[] }> {
    const errors: unknown[] = [];
    const cluster = new SqlCluster(db, { instance, ttlMs: TTL_MS, local: () => [], onError: (e) => errors.push(e), ...options });
    await cluster.start();
    clusters.push(cluster);
    return { cluster, errors };
  }
  const closeAll = () => Promise.all(clusters.splice(0).map((c) => c.close()));
  /** A connection of `cluster` that watches the joins and leaves of `channel` (as a presence subscribe writes it first). */
  const watcher = (cluster: SqlCluster, id: string, channel: string) => {
    cluster.connected(id, 'watcher', 'websocket', Date.now());
    cluster.subscribed(id, 'watcher', [`$presence:${channel}`]);
  };
  /** The join/leave events stored for a channel, as "event uid". */
  const events = async (db: SqlDriver, channel: string) =>
    (await db.query("select data from mesh_message where channel = $1 order by id", [`$presence:${channel}`])).map((r) => {
      const e = JSON.parse(r.data as string) as { event: string; uid: string };
      return `${e.event} ${e.uid}`;
    });

  test('a user is one member however many connections: one join at the first, one leave at the last', async () => {
    const { cluster, subject } = await presence();
    try {
      watcher(cluster, 'i1.w', 'room');
      await cluster.flush();
      cluster.connected('i1.a', 'ann', 'websocket', Date.now());
      cluster.subscribed('i1.a', 'ann', ['room']);
      await cluster.flush();
      cluster.connected('i1.b', 'ann', 'sse', Date.now());
      cluster.subscribed('i1.b', 'ann', ['room']);
      await cluster.flush();
      expect((await cluster.members('room')).uids).toEqual(['ann']);
      cluster.unsubscribed('i1.a', 'ann', ['room']);
      await cluster.flush();
      expect(await events(subject.app, 'room')).toEqual(['join ann']);
      cluster.disconnected('i1.b', 'client_closed');
      await cluster.flush();
      expect(await events(subject.app, 'room')).toEqual(['join ann', 'leave ann']);
      expect((await cluster.members('room')).uids).toEqual([]);
    } finally {
      await closeAll();
    }
  });

  test("a channel's joins and leaves are written only while someone watches them (a '$presence:' row anywhere, or a Pusher presence channel)", async () => {
    const { cluster, subject } = await presence();
    const { cluster: other } = await member(subject.app, 'i2');
    try {
      cluster.connected('i1.a', 'ann', 'websocket', Date.now());
      cluster.subscribed('i1.a', 'ann', ['room', 'user:ann', '$pusher:1:presence-lobby', '$pusher:1:private-orders']);
      await cluster.flush();
      // Nobody watches room: no rows, no ids taken. The Pusher presence channel's members hear their own.
      expect(await events(subject.app, 'room')).toEqual([]);
      expect(await events(subject.app, 'user:ann')).toEqual([]);
      expect(await events(subject.app, '$pusher:1:presence-lobby')).toEqual(['join ann']);
      expect(await events(subject.app, '$pusher:1:private-orders')).toEqual([]);
      expect(await subject.app.query('select last_id::int4 as n from mesh_seq')).toEqual([{ n: 1 }]);
      // A watch on another instance: from the batch after it, room's changes are written, by whichever instance.
      watcher(other, 'i2.w', 'room');
      await other.flush();
      cluster.connected('i1.b', 'bob', 'websocket', Date.now());
      cluster.subscribed('i1.b', 'bob', ['room']);
      cluster.unsubscribed('i1.a', 'ann', ['room']);
      await cluster.flush();
      expect(await events(subject.app, 'room')).toEqual(['leave ann', 'join bob']);
      // The watch is no channel anyone is in: not listed, not in the watcher's channels, no webhook-worthy occupant.
      expect((await cluster.channels({ limit: 10 })).items.map((c) => c.channel)).toEqual(['room', 'user:ann']);
      expect((await cluster.channels({ prefix: '$', limit: 10 })).items.map((c) => c.channel)).toEqual(['$pusher:1:presence-lobby', '$pusher:1:private-orders']);
      expect((await cluster.user('watcher')).map((c) => c.channels)).toEqual([[]]);
      // Unwatched again: nothing more is written.
      other.unsubscribed('i2.w', 'watcher', ['$presence:room']);
      await other.flush();
      cluster.disconnected('i1.b', 'client_closed');
      await cluster.flush();
      expect(await events(subject.app, 'room')).toEqual(['leave ann', 'join bob']);
      expect((await cluster.members('room')).uids).toEqual([]);
    } finally {
      await closeAll();
    }
  });

  // Planned on the statistics of tables that grew faster than autovacuum looked at them, each batch's
  // count of whether a channel was empty became a scan of every subscription per new channel, and its
  // check that a subscription's connection is this instance's a read of all the instance's connections.
  test('a batch reads only the rows it touches, however fast the tables grew', async () => {
    const { cluster, subject } = await presence();
    try {
      const BATCHES = 15;
      const PER_BATCH = 200;
      // 'room' is watched (its joins are written), each user channel is not: both ways read by index.
      watcher(cluster, 'i1.w', 'room');
      await cluster.flush();
      for (let b = 0; b < BATCHES; b++) {
        for (let k = 0; k < PER_BATCH; k++) {
          const i = b * PER_BATCH + k;
          cluster.connected(`i1.c${i}`, `u${i}`, 'websocket', Date.now());
          // Each connection subscribes a batch after it connected, as a client's subscribe follows its auth.
          if (b > 0) cluster.subscribed(`i1.c${i - PER_BATCH}`, `u${i - PER_BATCH}`, [`user:u${i - PER_BATCH}`, 'room']);
        }
        await cluster.flush();
      }
      const subscriptions = (BATCHES - 1) * PER_BATCH * 2 + 1;
      const read = async (table: string) => {
        const [row] = await subject.app.query('select n_tup_ins, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) as fetched from pg_stat_user_tables where relname = $1', [table]);
        return { inserted: Number(row?.n_tup_ins ?? 0), fetched: Number(row?.fetched ?? 0) };
      };
      // The applying session's counters reach the view once it flushes them: wait for its inserts to show.
      const deadline = Date.now() + 20_000;
      let stats = await read('mesh_subscription');
      while (stats.inserted < subscriptions) {
        if (Date.now() > deadline) throw new Error(`statistics show ${stats.inserted} of ${subscriptions} subscriptions inserted`);
        await new Promise((resolve) => setTimeout(resolve, 200)); // polling a view no event announces
        await subject.app.query('select pg_stat_force_next_flush()');
        stats = await read('mesh_subscription');
      }
      const connections = await read('mesh_connection');
      expect(stats.inserted).toBe(subscriptions);
      expect(connections.inserted).toBe(BATCHES * PER_BATCH + 1);
      expect(await events(subject.app, 'room')).toHaveLength((BATCHES - 1) * PER_BATCH);
      // Each batch touches 200 connections and 400 subscriptions: a few thousand rows in all. Reading
      // every row per batch (or per channel) would be ~BATCHES² × PER_BATCH (×PER_BATCH) rows.
      expect(stats.fetched).toBeLessThan(subscriptions);
      expect(connections.fetched).toBeLessThan(BATCHES * PER_BATCH * 2);
      expect(await subject.app.query("select count(*)::int4 as n from mesh_message where channel like '$presence:user:%'")).toEqual([{ n: 0 }]);
    } finally {
      await closeAll();
    }
  });

  // Laravel Echo's private() then join(): the socket is nobody for the first, a member for the second.
  test('an unsubscribe takes only the channels it names, a close every subscription of its connection; neither touches another connection', async () => {
    const { cluster } = await presence();
    try {
      cluster.connected('i1.a', 'ann', 'websocket', Date.now());
      cluster.connected('i1.b', 'bob', 'websocket', Date.now());
      cluster.subscribed('i1.a', 'ann', ['room', 'lobby', 'news']);
      cluster.subscribed('i1.b', 'bob', ['room', 'lobby']);
      await cluster.flush();
      cluster.unsubscribed('i1.a', 'ann', ['room']);
      await cluster.flush();
      expect((await cluster.members('room')).uids).toEqual(['bob']);
      expect((await cluster.members('lobby')).uids).toEqual(['ann', 'bob']);
      // In one batch: bob leaves the lobby while ann's connection closes.
      cluster.unsubscribed('i1.b', 'bob', ['lobby']);
      cluster.disconnected('i1.a', 'client_closed');
      await cluster.flush();
      expect((await cluster.members('lobby')).uids).toEqual([]);
      expect((await cluster.members('news')).uids).toEqual([]);
      expect((await cluster.members('room')).uids).toEqual(['bob']);
    } finally {
      await closeAll();
    }
  });

  test('a subscription keeps the uid its connection had when it was queued, when its uid is settled later in the same batch', async () => {
    const { cluster } = await presence();
    try {
      cluster.connected('i1.s', '$pusher:1:#i1.s', 'websocket', Date.now());
      cluster.subscribed('i1.s', '$pusher:1:#i1.s', ['$pusher:1:private-orders.1']);
      cluster.connected('i1.s', '$pusher:1:42', 'websocket', Date.now());
      cluster.subscribed('i1.s', '$pusher:1:42', ['$pusher:1:presence-room.1'], '{"name":"Ann"}');
      await cluster.flush();
      expect(await cluster.members('$pusher:1:presence-room.1')).toMatchObject({ uids: ['$pusher:1:42'], info: { '$pusher:1:42': '{"name":"Ann"}' } });
      expect((await cluster.user('$pusher:1:42')).map((c) => c.channels)).toEqual([['$pusher:1:presence-room.1', '$pusher:1:private-orders.1']]);
    } finally {
      await closeAll();
    }
  });

  test('no row for a connection that is not live: never written, gone before its subscribe was written, or gone in the same batch', async () => {
    const { cluster, subject } = await presence();
    try {
      // Never connected (its auth never got through), yet a subscribe arrives.
      cluster.subscribed('i1.never', 'nobody', ['room']);
      // Connected and gone, written; then news of a subscribe comes late.
      cluster.connected('i1.gone', 'gus', 'websocket', Date.now());
      await cluster.flush();
      cluster.disconnected('i1.gone', 'client_closed');
      await cluster.flush();
      cluster.subscribed('i1.gone', 'gus', ['room']);
      await cluster.flush();
      expect(await subject.app.query('select connection from mesh_subscription')).toEqual([]);
      expect(await events(subject.app, 'room')).toEqual([]);
      expect((await cluster.channels({ limit: 10 })).items).toEqual([]);
    } finally {
      await closeAll();
    }
  });

  test('subscriptions whose connection is gone (as an older version could leave them) are reaped when an instance starts, with their leave events', async () => {
    const subject = await startedSubject(make);
    await subject.app.exec(`insert into mesh_subscription (connection, channel, uid) values ('old.1', 'room', 'olga'), ('old.2', '$presence:room', 'wes')`);
    await member(subject.app, 'i2');
    try {
      expect(await subject.app.query('select connection from mesh_subscription')).toEqual([]);
      expect(await events(subject.app, 'room')).toEqual(['leave olga']);
    } finally {
      await closeAll();
    }
  });

  test("members, users and channels count only live instances' connections", async () => {
    const { cluster, subject } = await presence();
    try {
      cluster.connected('i1.live', 'lia', 'websocket', Date.now());
      cluster.subscribed('i1.live', 'lia', ['room']);
      await cluster.flush();
      // An instance silent past the TTL, not reaped yet: its rows are still there.
      await subject.app.exec(`
        insert into mesh_instance (id, seen_at) values ('dead', now() - interval '1 hour');
        insert into mesh_connection (id, instance, uid, transport, connected_at) values ('dead.1', 'dead', 'dan', 'websocket', now());
        insert into mesh_subscription (connection, channel, uid) values ('dead.1', 'room', 'dan');`);
      expect((await cluster.members('room')).uids).toEqual(['lia']);
      expect((await cluster.users({ limit: 10 })).items).toEqual(['lia']);
      expect((await cluster.channels({ limit: 10 })).items).toEqual([{ channel: 'room', subscribers: 1, users: 1 }]);
      expect(await cluster.user('dan')).toEqual([]);
    } finally {
      await closeAll();
    }
  });

  test('connectionsIn(): every live connection of a channel with its own info, one row each (not one per user)', async () => {
    const { cluster, subject } = await presence();
    try {
      cluster.connected('i1.a', 'same', 'sse', Date.now());
      cluster.subscribed('i1.a', 'same', ['$hub'], '{"n":1}');
      cluster.connected('i1.b', 'same', 'sse', Date.now());
      cluster.subscribed('i1.b', 'same', ['$hub'], '{"n":2}');
      cluster.connected('i1.c', 'other', 'sse', Date.now());
      cluster.subscribed('i1.c', 'other', ['elsewhere']);
      await cluster.settled();
      await subject.app.exec(`
        insert into mesh_instance (id, seen_at) values ('dead', now() - interval '1 hour');
        insert into mesh_connection (id, instance, uid, transport, connected_at) values ('dead.1', 'dead', 'same', 'sse', now());
        insert into mesh_subscription (connection, channel, uid, info) values ('dead.1', '$hub', 'same', '{"n":3}');`);
      expect(await cluster.connectionsIn('$hub')).toEqual([
        { connection: 'i1.a', info: '{"n":1}' },
        { connection: 'i1.b', info: '{"n":2}' },
      ]);
    } finally {
      await closeAll();
    }
  });

  test('settled(): once it resolves, what was told is read back by any instance, without a flush', async () => {
    const { cluster, subject } = await presence();
    const { cluster: other } = await member(subject.app, 'i2');
    try {
      for (let i = 0; i < 20; i++) {
        cluster.connected(`i1.c${i}`, `u${i}`, 'websocket', Date.now());
        cluster.subscribed(`i1.c${i}`, `u${i}`, [`room${i}`]);
        await cluster.settled();
        expect((await other.user(`u${i}`)).map((c) => c.channels)).toEqual([[`room${i}`]]);
      }
      // Nothing waiting: it resolves at once.
      await cluster.settled();
    } finally {
      await closeAll();
    }
  });

  test("a connection whose rows the database refuses is dropped; everyone else's are written, now and after", async () => {
    const refused: unknown[] = [];
    const { cluster, errors } = await presence('i1', { onRefused: (e) => refused.push(e) });
    try {
      cluster.connected('i1.good', 'alice', 'websocket', Date.now());
      cluster.subscribed('i1.good', 'alice', ['room']);
      cluster.connected('i1.bad', 'mallory\u0000', 'websocket', Date.now());
      cluster.subscribed('i1.bad', 'mallory\u0000', ['room']);
      await cluster.flush();
      expect(refused.length).toBe(1);
      expect((await cluster.user('alice')).map((c) => [c.id, c.channels])).toEqual([['i1.good', ['room']]]);
      // Nothing is left to retry forever: the next change goes through on its own.
      cluster.connected('i1.next', 'bob', 'websocket', Date.now());
      await cluster.settled();
      expect((await cluster.user('bob')).map((c) => c.id)).toEqual(['i1.next']);
      expect(refused.length).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      await closeAll();
    }
  });

  test('a clean stop removes the instance and its connections at once, with their leave events', async () => {
    const { cluster, subject } = await presence();
    const { cluster: other } = await member(subject.app, 'i2');
    watcher(other, 'i2.w', 'room');
    cluster.connected('i1.x', 'xena', 'websocket', Date.now());
    cluster.subscribed('i1.x', 'xena', ['room']);
    await other.flush();
    await cluster.flush();
    await cluster.close();
    expect(await subject.app.query("select id from mesh_connection where instance = 'i1'")).toEqual([]);
    expect(await subject.app.query("select id from mesh_instance where id = 'i1'")).toEqual([]);
    expect(await events(subject.app, 'room')).toEqual(['join xena', 'leave xena']);
    await closeAll();
    expect(await subject.app.query('select id from mesh_connection')).toEqual([]);
    expect(await subject.app.query('select id from mesh_instance')).toEqual([]);
  });

  test("instances: each one's report and samples are read by every instance, its address by the user lookup; a silent one is shown not live", async () => {
    const { cluster, subject } = await presence('i1');
    try {
      const { cluster: other } = await member(subject.app, 'i2');
      await cluster.report({ state: 'ready', n: 1 }, { published: 1 });
      await other.report({ state: 'draining', n: 2 }, { published: 5 });
      await cluster.report({ state: 'ready', n: 3 }, { published: 2 });
      const rows = await other.instances();
      expect(rows.map((r) => [r.id, r.live, r.stats])).toEqual([
        ['i1', true, { state: 'ready', n: 3 }],
        ['i2', true, { state: 'draining', n: 2 }],
      ]);
      // Oldest first (by the database's clock, which may give two instances' samples the same time).
      const samples = await other.samples(0, 1);
      const of = (list: typeof samples, id: string) => list.filter((s) => s.instance === id).map((s) => s.sample);
      expect(of(samples, 'i1')).toEqual([{ published: 1 }, { published: 2 }]);
      expect(of(samples, 'i2')).toEqual([{ published: 5 }]);
      expect(samples.map((s) => s.at)).toEqual(samples.map((s) => s.at).sort((a, b) => a - b));
      // After a time: only what is newer; thinned: the newest of each instance always kept.
      const firstAt = samples.find((s) => s.instance === 'i1')!.at;
      expect(of(await other.samples(firstAt, 1), 'i1')).toEqual([{ published: 2 }]);
      const thinned = await other.samples(0, 2);
      expect([of(thinned, 'i1'), of(thinned, 'i2')]).toEqual([[{ published: 2 }], [{ published: 5 }]]);
      // The client's address, as the proxies told it, comes back with the connection.
      cluster.connected('i1.addr', 'ada', 'websocket', Date.now(), '203.0.113.7');
      await cluster.settled();
      expect((await other.user('ada')).map((c) => c.address)).toEqual(['203.0.113.7']);
      // Silent past the dead period (its heartbeat made old): listed, not live, until reaped.
      await subject.app.query("update mesh_instance set seen_at = now() - interval '1 hour' where id = 'i2'");
      expect((await cluster.instances()).map((r) => [r.id, r.live])).toEqual([
        ['i1', true],
        ['i2', false],
      ]);
    } finally {
      await closeAll();
    }
  });
});
