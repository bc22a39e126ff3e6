/**
 * The one schema both stores apply, as numbered migrations. A database
 * migrated by a newer pgmesh is refused rather than written to.
 *
 * Kept as TypeScript strings rather than a .sql file so that no runtime has to
 * read files to start, and a bundled build carries its schema with it.
 */

export interface Migration {
  version: number;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      -- One row: the last id handed out. Updated inside every publish statement, it
      -- serialises publishers, so ids are gap-free and commit in id order.
      create table mesh_seq (
        singleton boolean primary key default true check (singleton),
        last_id bigint not null
      );
      insert into mesh_seq (singleton, last_id) values (true, 0);

      create table mesh_message (
        id bigint primary key,
        channel text not null,
        data text not null,
        sender text,
        created_at timestamptz not null default now()
      );
      create index mesh_message_channel_id on mesh_message (channel, id);
      create index mesh_message_created_at on mesh_message (created_at);

      -- Server-side position per (user, channel) for clients that send none.
      create table mesh_cursor (
        uid text not null,
        channel text not null,
        last_id bigint not null,
        updated_at timestamptz not null default now(),
        primary key (uid, channel)
      );
    `,
  },
  {
    version: 2,
    sql: `
      -- mesh_publish() from an application's own transaction writes here, not to the
      -- outbox: taking the id counter would hold it for the application's whole
      -- transaction. pgmesh moves committed inbox rows into the outbox in one short
      -- statement, woken by the NOTIFY below (sent only if the transaction commits).
      create table mesh_inbox (
        seq bigserial primary key,
        channel text not null,
        data text not null,
        created_at timestamptz not null default now()
      );

      create function mesh_publish(channel text, data text) returns void
      language plpgsql as $$
      begin
        if channel is null or channel = '' or octet_length(channel) > 255 or channel ~ '[[:space:][:cntrl:]*]' then
          raise exception 'mesh_publish: invalid channel name %', coalesce(quote_literal(channel), 'NULL')
            using errcode = '22023';
        end if;
        if data is null then
          raise exception 'mesh_publish: data must not be NULL' using errcode = '22004';
        end if;
        insert into mesh_inbox (channel, data) values (channel, data);
        perform pg_notify('pgmesh', '{"inbox":1}');
      end;
      $$;

      create function mesh_publish(channels text[], datas text[]) returns void
      language plpgsql as $$
      declare
        i int;
      begin
        if coalesce(array_length(channels, 1), 0) <> coalesce(array_length(datas, 1), 0) then
          raise exception 'mesh_publish: % channels but % data', array_length(channels, 1), array_length(datas, 1)
            using errcode = '22023';
        end if;
        for i in 1 .. coalesce(array_length(channels, 1), 0) loop
          perform mesh_publish(channels[i], datas[i]);
        end loop;
      end;
      $$;
    `,
  },
  {
    version: 3,
    sql: `
      -- Ids up to here may have been deleted by retention: a client resuming from
      -- below it is told so instead of silently missing messages.
      create table mesh_retention (
        singleton boolean primary key default true check (singleton),
        expired_upto bigint not null
      );
      insert into mesh_retention (singleton, expired_upto) values (true, 0);
    `,
  },
  {
    version: 4,
    sql: `
      -- Connections a message must not reach (the sender of a room message, say).
      alter table mesh_message add column exclude text[];

      -- Cluster state: every instance heartbeats its row; one whose heartbeat is too old
      -- is dead, and its connections leave every answer.
      create table mesh_instance (
        id text primary key,
        region text,
        started_at timestamptz not null default now(),
        seen_at timestamptz not null default now()
      );

      -- Who is connected where, and to what (presence). Written in batches by the
      -- instance holding the connection; read by every instance's server API.
      create table mesh_connection (
        id text primary key,
        instance text not null,
        uid text not null,
        transport text not null,
        connected_at timestamptz not null
      );
      create index mesh_connection_uid on mesh_connection (uid);
      create index mesh_connection_instance on mesh_connection (instance);

      create table mesh_subscription (
        connection text not null,
        channel text not null,
        uid text not null,
        primary key (connection, channel)
      );
      create index mesh_subscription_channel_uid on mesh_subscription (channel, uid);

      -- Applies one instance's batch of presence changes, and, with reap_after, removes the
      -- connections of instances silent for that long. Under a cluster-wide lock, so each
      -- (channel, user) transition is computed once: the first subscription of a user to a
      -- channel anywhere is a join, the last one gone a leave. The events become messages on
      -- '$presence:<channel>' in the same transaction (ids, order and repair as any message).
      -- batch: {"up":[[id,uid,transport,epoch ms]],"down":[id],"sub":[[id,channel,uid]],
      --         "unsub":[[id,channel]],"reset":bool (drop all of me first),"retire":bool}
      create function mesh_presence_apply(batch text, me text, reap_after interval)
      returns table (last_id int8, n int8, m text)
      language plpgsql as $fn$
      #variable_conflict use_column
      declare
        j json := batch::json;
        gone text[];
      begin
        perform pg_advisory_xact_lock(7361842002);
        gone := array(select i.id from mesh_instance i where reap_after is not null and i.seen_at < now() - reap_after and i.id <> me);
        if coalesce((j->>'reset')::boolean, false) or coalesce((j->>'retire')::boolean, false) then
          gone := gone || me;
        end if;
        return query
        with
        ups as (
          insert into mesh_connection (id, instance, uid, transport, connected_at)
          select e->>0, me, e->>1, e->>2, to_timestamp((e->>3)::float8 / 1000) from json_array_elements(j->'up') e
          on conflict (id) do update set uid = excluded.uid, transport = excluded.transport, connected_at = excluded.connected_at
        ),
        downs as (
          delete from mesh_connection c
          where c.id in (select json_array_elements_text(j->'down')) or c.instance = any(gone)
          returning c.id
        ),
        subs as (
          insert into mesh_subscription (connection, channel, uid)
          select e->>0, e->>1, e->>2 from json_array_elements(j->'sub') e
          on conflict do nothing
          returning channel, uid
        ),
        unsubs as (
          delete from mesh_subscription s
          where (s.connection, s.channel) in (select e->>0, e->>1 from json_array_elements(j->'unsub') e)
             or s.connection in (select json_array_elements_text(j->'down'))
             or s.connection in (select c.id from mesh_connection c where c.instance = any(gone))
          returning s.channel, s.uid
        ),
        instances as (
          delete from mesh_instance i where i.id = any(gone) and (i.id <> me or coalesce((j->>'retire')::boolean, false))
        ),
        delta as (
          select d.channel, d.uid, sum(d.k) as k
          from (select s.channel, s.uid, 1 as k from subs s union all select u.channel, u.uid, -1 from unsubs u) d
          group by d.channel, d.uid
        ),
        events as (
          select case when b.before = 0 then 'join' else 'leave' end as event, delta.channel, delta.uid
          from delta, lateral (select count(*) as before from mesh_subscription s where s.channel = delta.channel and s.uid = delta.uid) b
          where (b.before = 0 and b.before + delta.k > 0) or (b.before > 0 and b.before + delta.k <= 0)
        ),
        numbered as (
          select row_number() over (order by e.channel, e.uid) as ord, '$presence:' || e.channel as channel,
            json_build_object('event', e.event, 'uid', e.uid)::text as data
          from events e
        ),
        total as (select count(*)::int8 as n from numbered),
        seq as (
          update mesh_seq set last_id = mesh_seq.last_id + total.n from total where total.n > 0
          returning mesh_seq.last_id, total.n
        ),
        stored as (
          insert into mesh_message (id, channel, data, sender)
          select seq.last_id - seq.n + numbered.ord, numbered.channel, numbered.data, null from numbered, seq
        ),
        bodies as (
          select json_agg(json_build_array(numbered.channel, numbered.data, null) order by numbered.ord)::text as m from numbered
        )
        select seq.last_id, seq.n, bodies.m from seq, bodies;
      end;
      $fn$;
    `,
  },
  {
    version: 5,
    sql: `
      -- Which statement committed which ids, by a token the publisher chose: when the
      -- connection dies before the answer arrives, the publisher looks its token up
      -- instead of guessing (a commit of unknown outcome is never reported as failed).
      create table mesh_publish_log (
        token uuid primary key,
        last_id bigint not null,
        n int4 not null,
        at timestamptz not null default now()
      );
      create index mesh_publish_log_at on mesh_publish_log (at);

      -- Settings SQL must see, written by the instances at start.
      create table mesh_setting (
        name text primary key,
        value text not null
      );

      -- mesh_publish() enforces the same size limit as the HTTP API, and the same reserved names.
      create or replace function mesh_publish(channel text, data text) returns void
      language plpgsql as $$
      declare
        max_message int8 := coalesce((select value::int8 from mesh_setting where name = 'max_message'), 1048576);
      begin
        if channel is null or channel = '' or octet_length(channel) > 255 or channel ~ '[[:space:][:cntrl:]*]' or left(channel, 1) = '$' then
          raise exception 'mesh_publish: invalid channel name %', coalesce(quote_literal(channel), 'NULL')
            using errcode = '22023';
        end if;
        if data is null then
          raise exception 'mesh_publish: data must not be NULL' using errcode = '22004';
        end if;
        if octet_length(data) > max_message then
          raise exception 'mesh_publish: message of % bytes is larger than MESH_MAX_MESSAGE (% bytes)', octet_length(data), max_message
            using errcode = '54000';
        end if;
        insert into mesh_inbox (channel, data) values (channel, data);
        perform pg_notify('pgmesh', '{"inbox":1}');
      end;
      $$;
    `,
  },
  {
    version: 6,
    sql: `
      -- Where an instance can be reached by the others: an SSE uplink POST that lands
      -- on another instance is relayed there.
      alter table mesh_instance add column url text;
    `,
  },
  {
    version: 7,
    sql: `
      -- Webhooks (MESH_WEBHOOK_URL): events for the application's backend, written in the
      -- transaction that makes them true, sent and deleted by whichever instance claims
      -- them first (claimed_until is its lease), retried with backoff until they expire.
      -- target: whose queue it is: '' pgmesh's (MESH_WEBHOOK_URL), 'pusher:<app id>' a Pusher app's.
      create table mesh_webhook (
        id bigserial primary key,
        target text not null default '',
        event jsonb not null,
        created_at timestamptz not null default now(),
        due_at timestamptz not null default now(),
        attempts int4 not null default 0,
        last_error text,
        claimed_until timestamptz
      );
      create index mesh_webhook_queue on mesh_webhook (target, id);
      -- The batches in flight (a lease is set only while a sender holds them).
      create index mesh_webhook_claimed on mesh_webhook (target) where claimed_until is not null;

      -- What a member of a presence channel says about itself (a Pusher member's user_info, as JSON).
      alter table mesh_subscription add column info text;

      -- mesh_presence_apply() (kept for instances of the previous version during a rolling
      -- deploy), plus: disconnect reasons ("down" entries may be [id, reason]), one result row
      -- always, and the webhook events of the batch, computed under the same lock so a
      -- cluster-wide event (user_online, channel_vacated, …) is written once. "targets" says
      -- whose events to write ("send") or only count ("drop": that backlog is full): '' for
      -- pgmesh's own (users and channels not starting with $), 'pusher:<app id>' for a Pusher
      -- app's, in Pusher's format (channel_occupied/vacated, member_added/removed on presence-
      -- channels). The result's hooks is {"<target>": count} of the events of those targets.
      -- Subscriptions may carry info (a presence member's user_info), which their join event carries too.
      create function mesh_cluster_apply(batch text, me text, reap_after interval)
      returns table (last_id int8, n int8, m text, hooks text)
      language plpgsql as $fn$
      #variable_conflict use_column
      declare
        j json := batch::json;
        gone text[];
        retire boolean := coalesce((j->>'retire')::boolean, false);
        targets json := coalesce(j->'targets', '{}'::json);
      begin
        perform pg_advisory_xact_lock(7361842002);
        gone := array(select i.id from mesh_instance i where reap_after is not null and i.seen_at < now() - reap_after and i.id <> me);
        if coalesce((j->>'reset')::boolean, false) or retire then
          gone := gone || me;
        end if;
        return query
        with
        down_list as (
          select case when json_typeof(e) = 'array' then e->>0 else e #>> '{}' end as id,
                 case when json_typeof(e) = 'array' then e->>1 else 'client_closed' end as reason
          from json_array_elements(j->'down') e
        ),
        explicit_unsub as (
          select e->>0 as connection, e->>1 as channel from json_array_elements(j->'unsub') e
        ),
        ups as (
          insert into mesh_connection (id, instance, uid, transport, connected_at)
          select e->>0, me, e->>1, e->>2, to_timestamp((e->>3)::float8 / 1000) from json_array_elements(j->'up') e
          on conflict (id) do update set uid = excluded.uid, transport = excluded.transport, connected_at = excluded.connected_at
          returning id, uid, transport, (xmax = 0) as inserted
        ),
        downs as (
          delete from mesh_connection c
          where c.id in (select d.id from down_list d) or c.instance = any(gone)
          returning c.id, c.uid, c.transport, c.instance
        ),
        -- Why each went: as its instance said, or, for the connections of a whole instance, why that went.
        gone_why as (
          select w.id, w.uid, w.transport, w.instance,
            coalesce(d.reason, case when w.instance = me and retire then 'server_shutdown' else 'instance_lost' end) as reason
          from downs w left join down_list d on d.id = w.id
        ),
        subs as (
          insert into mesh_subscription (connection, channel, uid, info)
          select e->>0, e->>1, e->>2, e->>3 from json_array_elements(j->'sub') e
          on conflict do nothing
          returning connection, channel, uid, info
        ),
        unsubs as (
          delete from mesh_subscription s
          where (s.connection, s.channel) in (select x.connection, x.channel from explicit_unsub x)
             or s.connection in (select d.id from down_list d)
             or s.connection in (select c.id from mesh_connection c where c.instance = any(gone))
          returning s.connection, s.channel, s.uid
        ),
        instances as (
          delete from mesh_instance i where i.id = any(gone) and (i.id <> me or retire)
        ),
        delta as (
          select d.channel, d.uid, sum(d.k) as k
          from (select s.channel, s.uid, 1 as k from subs s union all select u.channel, u.uid, -1 from unsubs u) d
          group by d.channel, d.uid
        ),
        events as (
          select case when b.before = 0 then 'join' else 'leave' end as event, delta.channel, delta.uid,
            (select s.info from subs s where s.channel = delta.channel and s.uid = delta.uid and s.info is not null limit 1) as info
          from delta, lateral (select count(*) as before from mesh_subscription s where s.channel = delta.channel and s.uid = delta.uid) b
          where (b.before = 0 and b.before + delta.k > 0) or (b.before > 0 and b.before + delta.k <= 0)
        ),
        numbered as (
          select row_number() over (order by e.channel, e.uid) as ord, '$presence:' || e.channel as channel,
            (case when e.event = 'join' and e.info is not null
              then json_build_object('event', e.event, 'uid', e.uid, 'info', e.info::json)
              else json_build_object('event', e.event, 'uid', e.uid) end)::text as data
          from events e
        ),
        total as (select count(*)::int8 as n from numbered),
        seq as (
          update mesh_seq set last_id = mesh_seq.last_id + total.n from total where total.n > 0
          returning mesh_seq.last_id, total.n
        ),
        stored as (
          insert into mesh_message (id, channel, data, sender)
          select seq.last_id - seq.n + numbered.ord, numbered.channel, numbered.data, null from numbered, seq
        ),
        bodies as (
          select json_agg(json_build_array(numbered.channel, numbered.data, null) order by numbered.ord)::text as m from numbered
        ),
        -- Each table as it was before this statement (one snapshot), plus this batch's changes.
        user_delta as (
          select d.uid, sum(d.k) as k
          from (select u.uid, 1 as k from ups u where u.inserted union all select w.uid, -1 from downs w) d
          where left(d.uid, 1) <> '$'
          group by d.uid
        ),
        user_events as (
          select case when b.before = 0 then 'user_online' else 'user_offline' end as type, ud.uid
          from user_delta ud, lateral (select count(*) as before from mesh_connection c where c.uid = ud.uid) b
          where (b.before = 0 and ud.k > 0) or (b.before > 0 and b.before + ud.k <= 0)
        ),
        channel_delta as (
          select d.channel, sum(d.k) as k
          from (select s.channel, 1 as k from subs s union all select u.channel, -1 from unsubs u) d
          where left(d.channel, 1) <> '$' or d.channel like '$pusher:%'
          group by d.channel
        ),
        channel_events as (
          select case when b.before = 0 then 'channel_occupied' else 'channel_vacated' end as type, cd.channel
          from channel_delta cd, lateral (select count(*) as before from mesh_subscription s where s.channel = cd.channel) b
          where (b.before = 0 and cd.k > 0) or (b.before > 0 and b.before + cd.k <= 0)
        ),
        -- A Pusher app's channel '$pusher:<app>:<name>' and member '$pusher:<app>:<user_id>', taken apart.
        pusher_channel_events as (
          select ce.type, 'pusher:' || split_part(ce.channel, ':', 2) as target, substr(ce.channel, 10 + length(split_part(ce.channel, ':', 2))) as name
          from channel_events ce where ce.channel like '$pusher:%'
        ),
        pusher_member_events as (
          select case when e.event = 'join' then 'member_added' else 'member_removed' end as type,
            'pusher:' || split_part(e.channel, ':', 2) as target,
            substr(e.channel, 10 + length(split_part(e.channel, ':', 2))) as name,
            substr(e.uid, 10 + length(split_part(e.uid, ':', 2))) as user_id
          from events e
          where e.channel like '$pusher:%' and split_part(e.channel, ':', 3) like 'presence-%' and e.uid like '$pusher:%'
        ),
        hook_events as (
          select 1 as ord, '' as target, jsonb_build_object('type', 'connect', 'connection', u.id, 'uid', u.uid, 'transport', u.transport, 'instance', me) as e
            from ups u where u.inserted and left(u.uid, 1) <> '$'
          union all select 2, '', jsonb_build_object('type', ue.type, 'uid', ue.uid) from user_events ue where ue.type = 'user_online'
          union all select 3, '', jsonb_build_object('type', 'subscribe', 'connection', s.connection, 'uid', s.uid, 'channel', s.channel)
            from subs s where left(s.channel, 1) <> '$'
          union all select 4, '', jsonb_build_object('type', ce.type, 'channel', ce.channel) from channel_events ce where ce.type = 'channel_occupied' and left(ce.channel, 1) <> '$'
          union all select 4, p.target, jsonb_build_object('name', p.type, 'channel', p.name) from pusher_channel_events p where p.type = 'channel_occupied'
          union all select 5, p.target, jsonb_build_object('name', p.type, 'channel', p.name, 'user_id', p.user_id) from pusher_member_events p where p.type = 'member_added'
          union all select 6, '', jsonb_build_object('type', 'unsubscribe', 'connection', u.connection, 'uid', u.uid, 'channel', u.channel)
            from unsubs u where left(u.channel, 1) <> '$' and (u.connection, u.channel) in (select x.connection, x.channel from explicit_unsub x)
          union all select 7, p.target, jsonb_build_object('name', p.type, 'channel', p.name, 'user_id', p.user_id) from pusher_member_events p where p.type = 'member_removed'
          union all select 8, '', jsonb_build_object('type', ce.type, 'channel', ce.channel) from channel_events ce where ce.type = 'channel_vacated' and left(ce.channel, 1) <> '$'
          union all select 8, p.target, jsonb_build_object('name', p.type, 'channel', p.name) from pusher_channel_events p where p.type = 'channel_vacated'
          union all select 9, '', jsonb_build_object('type', 'disconnect', 'connection', w.id, 'uid', w.uid, 'transport', w.transport, 'instance', w.instance, 'reason', w.reason)
            from gone_why w where left(w.uid, 1) <> '$'
          union all select 10, '', jsonb_build_object('type', ue.type, 'uid', ue.uid) from user_events ue where ue.type = 'user_offline'
        ),
        hooked as (
          -- pgmesh's events carry an id (for de-duplication) and a time; Pusher's format has neither.
          insert into mesh_webhook (target, event)
          select h.target, case when h.target = '' then h.e || jsonb_build_object('id', gen_random_uuid(), 'at', (extract(epoch from clock_timestamp()) * 1000)::int8) else h.e end
          from hook_events h where targets->>h.target = 'send'
          order by h.ord
        ),
        counted as (
          select json_object_agg(c.target, c.n)::text as hooks
          from (select h.target, count(*) as n from hook_events h where targets->>h.target is not null group by h.target) c
        )
        select seq.last_id, seq.n, bodies.m, counted.hooks
        from (select 1) one left join seq on true cross join bodies cross join counted;
      end;
      $fn$;
    `,
  },
  {
    // A webhook batch's lease names its holder: only the sender that claimed a batch may deliver or
    // retry it, so one slower than its lease cannot delete or release a batch claimed again since.
    version: 8,
    sql: `alter table mesh_webhook add column claim_token uuid;`,
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
