/**
 * The statements of the hot paths, each one round trip. Kept apart from the
 * store's logic so the SQL can be read (and explained) in one place.
 */

/** The one LISTEN channel of every instance (mesh_publish() in schema.ts notifies it too). */
export const NOTIFY_CHANNEL = 'pgmesh';
/** Rows per read when catching up or sequencing the inbox. */
export const PAGE = 1000;

// The notification's "at": when the statement ran, just before its commit (for the backplane-lag metric).
const COMMIT_TIME = `',"at":' || (extract(epoch from clock_timestamp()) * 1000)::int8`;

// One statement, one round trip: take ids from the counter (which serialises
// publishers until commit), insert the batch, notify. $1 is a JSON array of
// [channel, data, sender, exclude] entries; $4 a token naming this statement in
// mesh_publish_log, for finding out whether it committed when its answer is lost. The notification carries
// the batch itself when $3 says it fits, otherwise only its id range. With `hooks`, $5 is a JSON
// array of [target, event, bound] webhook events written in the same transaction (a Pusher
// client_event), each only while its target has fewer than `bound` waiting (null: no bound);
// `hooked` says how many each target took.
const publishSql = (hooks: boolean) => `
  with batch as (
    select ord, e->>0 as channel, e->>1 as data, e->>2 as sender,
      case when json_typeof(e->3) = 'array' then array(select json_array_elements_text(e->3)) end as exclude
    from json_array_elements($1::text::json) with ordinality as t(e, ord)
  ), seq as (
    update mesh_seq set last_id = last_id + $2::int8 returning last_id
  ), stored as (
    insert into mesh_message (id, channel, data, sender, exclude)
    select seq.last_id - $2::int8 + batch.ord, batch.channel, batch.data, batch.sender, batch.exclude from batch, seq
  ), logged as (
    insert into mesh_publish_log (token, last_id, n) select $4::uuid, seq.last_id, $2::int4 from seq
  )${hooks ? `, hooked as (
    insert into mesh_webhook (target, event)
    select h->>0, (h->1)::jsonb from json_array_elements($5::text::json) with ordinality as t(h, n)
    where h->>2 is null or coalesce((select b.pending from mesh_webhook_backlog b where b.target = h->>0), 0) < (h->>2)::int8
    order by n
    returning target
  )` : ''}
  select seq.last_id as last_id,${hooks ? ` (select coalesce(json_object_agg(w.target, w.n), '{}')::text from (select target, count(*) as n from hooked group by target) w) as hooked,` : ''}
    pg_notify('${NOTIFY_CHANNEL}', '{"from":' || (seq.last_id - $2::int8 + 1) || ',"to":' || seq.last_id || ${COMMIT_TIME}
      || coalesce(',"m":' || case when $3::boolean then $1::text end, '') || '}')
  from seq`;
export const PUBLISH_SQL = publishSql(false);
/** PUBLISH_SQL that also queues webhook events ($5). */
export const PUBLISH_WITH_HOOKS_SQL = publishSql(true);

// Moves committed rows of the inbox (written by mesh_publish() in applications'
// transactions) into the outbox: same counter, same one-statement shape as a
// publish. SKIP LOCKED lets every instance try at once without waiting.
export const SEQUENCE_INBOX_SQL = `
  with moved as (
    delete from mesh_inbox where seq in (
      select seq from mesh_inbox order by seq limit ${PAGE} for update skip locked)
    returning seq, channel, data
  ), numbered as (
    select row_number() over (order by seq) as ord, channel, data from moved
  ), total as (
    select count(*)::int8 as n from numbered
  ), seq as (
    update mesh_seq set last_id = last_id + total.n from total where total.n > 0 returning last_id, total.n as n
  ), stored as (
    insert into mesh_message (id, channel, data, sender)
    select seq.last_id - seq.n + numbered.ord, numbered.channel, numbered.data, null from numbered, seq
  )
  select seq.last_id as last_id, seq.n as n,
    pg_notify('${NOTIFY_CHANNEL}', '{"from":' || (seq.last_id - seq.n + 1) || ',"to":' || seq.last_id || ${COMMIT_TIME} || '}')
  from seq`;

export const CURSOR_UPSERT_SQL = `
  insert into mesh_cursor (uid, channel, last_id)
  select e->>0, e->>1, (e->>2)::int8 from json_array_elements($1::text::json) as e
  on conflict (uid, channel) do update
    set last_id = greatest(mesh_cursor.last_id, excluded.last_id), updated_at = now()`;

/** The columns a Message is read from. */
export const MESSAGE_COLUMNS = 'id, channel, data, sender, exclude';

// Many history reads, each of one channel, in one statement (ReadBatch): $1 is a JSON array of
// [channel, after id, limit]; each row names the entry it answers (q, from 1), in id order within it.
export const HISTORY_BATCH_SQL = `
  select r.q, m.id, m.channel, m.data, m.sender, m.exclude
  from json_array_elements($1::text::json) with ordinality as r(e, q)
  cross join lateral (
    select ${MESSAGE_COLUMNS} from mesh_message
    where channel = r.e->>0 and id > (r.e->>1)::int8 order by id limit (r.e->>2)::int4
  ) m
  order by r.q, m.id`;

// Several cursor lookups in one statement: $1 is a JSON array of [uid, channel]; a row for each one found.
export const CURSOR_BATCH_SQL = `
  select r.q, c.last_id
  from json_array_elements($1::text::json) with ordinality as r(e, q)
  join mesh_cursor c on c.uid = r.e->>0 and c.channel = r.e->>1`;

// The first Mercure update (a message on $mercure) carrying a publisher's own id: the channel is
// written out, so the partial index of migration 10 serves it.
export const MERCURE_EVENT_SQL = `select id from mesh_message where channel = '$mercure' and (data::json->>'i') = $1 order by id limit 1`;
