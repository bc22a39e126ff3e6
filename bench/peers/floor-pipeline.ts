/**
 * The floor's database side, the same on every runtime: the least a durable
 * Postgres backplane can do. A POST is one statement (insert the messages,
 * notify — with the messages inline when they fit, else the batch's number);
 * one LISTEN session hands each notification's messages, in notification order,
 * to the sockets of their room. No auth, no protocol, no ids for clients, no
 * group commit, no gap repair: what pgmesh's latency is measured against on the
 * same runtime (floor-bun.ts, floor-node.ts, floor-deno.ts serve it).
 */
import postgres from 'postgres';

export interface FloorSocket {
  send(text: string): void;
}

const PUBLISH = `
  with batch as (select nextval('floor_batch') as b),
  ins as (
    insert into floor_message (batch, channel, data)
    select batch.b, e->>0, e->>1 from batch, json_array_elements($1::text::json) e returning batch
  )
  select pg_notify('floor', case when $2::boolean then '{"m":' || $1 || '}' else '{"b":' || (select b from batch) || '}' end)
  from (select count(*) from ins) n`;

/** Connects, creates its table, LISTENs; resolves once ready. */
export async function floorPipeline(databaseUrl: string) {
  const sql = postgres(databaseUrl, { max: 8, onnotice: () => {} });
  // CREATE … IF NOT EXISTS races with itself: the bench starts one floor of a cluster first, then the others.
  await sql`create sequence if not exists floor_batch`;
  await sql`create table if not exists floor_message (id bigserial primary key, batch int8 not null, channel text not null, data text not null)`;
  await sql`create index if not exists floor_message_batch on floor_message (batch)`;
  const rooms = new Map<string, Set<FloorSocket>>();
  let inOrder: Promise<void> = Promise.resolve();
  const deliver = async (payload: string) => {
    const n = JSON.parse(payload) as { m?: [string, string][]; b?: number };
    const messages = n.m ?? (await sql<{ channel: string; data: string }[]>`select channel, data from floor_message where batch = ${n.b!} order by id`).map((r) => [r.channel, r.data] as [string, string]);
    for (const [channel, data] of messages) for (const socket of rooms.get(channel) ?? []) socket.send(data);
  };
  await sql.listen('floor', (payload) => {
    inOrder = inOrder.then(() => deliver(payload)).catch(() => {});
  });
  return {
    /** Stores and notifies a publish body ({"c","d"} or an array of them); resolves once committed. */
    async publish(text: string): Promise<void> {
      const body = JSON.parse(text) as { c: string; d: string } | { c: string; d: string }[];
      const batch = JSON.stringify((Array.isArray(body) ? body : [body]).map((m) => [m.c, m.d]));
      await sql.unsafe(PUBLISH, [batch, batch.length <= 7800]);
    },
    join(room: string, socket: FloorSocket): void {
      let members = rooms.get(room);
      if (members === undefined) rooms.set(room, (members = new Set()));
      members.add(socket);
    },
    leave(room: string, socket: FloorSocket): void {
      rooms.get(room)?.delete(socket);
    },
  };
}
