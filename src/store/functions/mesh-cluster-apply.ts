/**
 * mesh_cluster_apply(batch, me, reap_after): applies one instance's batch of presence
 * changes and, with reap_after, removes the connections of instances silent that long.
 *
 * Under a cluster-wide lock, so each transition is computed once for the cluster: a
 * user's first subscription to a channel anywhere is a join, the last one gone a leave.
 * Those events become messages on '$presence:<channel>' in the same transaction (ids,
 * order and repair as any message) where someone listens to them, and the webhook
 * events of the change (connect, user_online, channel_occupied, Pusher's member_added,
 * ...) are queued with it, each written once for the cluster. A reaped instance's connections leave with reason
 * 'instance_lost'; a retiring one's with 'server_shutdown'; a Mercure subscriber among
 * them has the updates that end its subscriptions published (on '$mercure').
 *
 * batch: {"up":[[id,uid,transport,epoch ms(,address)]], "down":[[id,reason]], "sub":[[id,channel,uid(,info)]],
 *         "unsub":[[id,channel]], "reset":bool (drop all of me first), "retire":bool (and my instance row),
 *         "targets":{"<webhook target>": bound}}
 * A sub to '$presence:<channel>' is a listener: while one exists, <channel>'s joins and leaves are written.
 * targets names whose webhook events to write ('' pgmesh's own: users and channels not starting with
 * $; 'pusher:<app id>' an app's, in Pusher's format), each with the most events it may have waiting.
 * The result's hooks is {"<target>": [events produced, events written]}.
 */
export const MESH_CLUSTER_APPLY = `
create or replace function mesh_cluster_apply(batch text, me text, reap_after interval)
returns table (last_id int8, n int8, m text, hooks text)
-- Every read here is meant to go by index, to the rows a batch touches. Planned on the statistics of
-- tables that grew faster than autovacuum looked at them (a storm on a new cluster), the count of a
-- channel's subscriptions below became a scan of all of them per new channel: quadratic in a storm.
language plpgsql set enable_seqscan = off as $fn$
#variable_conflict use_column
declare
  j json := batch::json;
  gone text[];
  retire boolean := coalesce((j->>'retire')::boolean, false);
  targets json := coalesce(j->'targets', '{}'::json);
  sweep boolean;
  channels text[];
  datas text[];
  messages text;
  hook_counts text;
  upto int8;
begin
  perform pg_advisory_xact_lock(7361842002);
  gone := array(select i.id from mesh_instance i where reap_after is not null and i.seen_at < now() - reap_after and i.id <> me);
  if coalesce((j->>'reset')::boolean, false) or retire then
    gone := gone || me;
  end if;
  -- Whenever instances go (a start, a stop, a reap), subscriptions whose connection is gone go too:
  -- sub_list writes none, but one left by an older version is reaped, not kept forever.
  sweep := cardinality(gone) > 0;
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
    insert into mesh_connection (id, instance, uid, transport, connected_at, address)
    select e->>0, me, e->>1, e->>2, to_timestamp((e->>3)::float8 / 1000), e->>4 from json_array_elements(j->'up') e
    on conflict (id) do update set uid = excluded.uid, transport = excluded.transport, connected_at = excluded.connected_at, address = excluded.address
    returning id, uid, transport, (xmax = 0) as inserted
  ),
  -- Written as "= any(array)" on both sides of the or, so each side is an index scan: "in (select ...)"
  -- read every connection of the cluster for each batch.
  downs as (
    delete from mesh_connection c
    where c.id = any(array(select d.id from down_list d)) or c.instance = any(gone)
    returning c.id, c.uid, c.transport, c.instance
  ),
  -- Why each went: as its instance said, or, for the connections of a whole instance, why that went.
  gone_why as (
    select w.id, w.uid, w.transport, w.instance,
      coalesce(d.reason, case when w.instance = me and retire then 'server_shutdown' else 'instance_lost' end) as reason
    from downs w left join down_list d on d.id = w.id
  ),
  -- The batch's subscribing connections as written earlier, looked up by id and only then checked to
  -- be this instance's (materialized, so the check is not planned into the lookup): an "exists" per
  -- subscription, or both conditions together, were planned as a read of all the instance's connections.
  known as materialized (
    select c.id, c.instance from mesh_connection c
    where c.id = any(array(select e->>0 from json_array_elements(j->'sub') e))
  ),
  -- Subscriptions of this instance's live connections only: one whose connection is gone (or goes in
  -- this batch, or was never written) would be a ghost that no reaping finds.
  sub_list as (
    select e->>0 as connection, e->>1 as channel, e->>2 as uid, e->>3 as info from json_array_elements(j->'sub') e
    where not (me = any(gone))
      and e->>0 not in (select d.id from down_list d)
      and (e->>0 in (select u->>0 from json_array_elements(j->'up') u) or e->>0 in (select k.id from known k where k.instance = me))
  ),
  subs as (
    insert into mesh_subscription (connection, channel, uid, info)
    select x.connection, x.channel, x.uid, x.info from sub_list x
    on conflict do nothing
    returning connection, channel, uid, info
  ),
  -- Connections whose every subscription goes: closed, of an instance gone, or (a sweep) gone already.
  whole as (
    select d.id from down_list d
    union all select c.id from mesh_connection c where c.instance = any(gone)
    union all select s.connection from mesh_subscription s where sweep and not exists (select 1 from mesh_connection c where c.id = s.connection)
  ),
  -- One index condition (the connections touched), then which of their subscriptions go: a list of
  -- conditions or'ed together read every subscription of the cluster for each batch.
  unsubs as (
    delete from mesh_subscription s
    where s.connection = any(array(select x.connection from explicit_unsub x union all select w.id from whole w))
      and (s.connection = any(array(select w.id from whole w))
        or (s.connection, s.channel) in (select x.connection, x.channel from explicit_unsub x))
    returning s.connection, s.channel, s.uid, s.info
  ),
  instances as (
    delete from mesh_instance i where i.id = any(gone) and (i.id <> me or retire)
  ),
  -- With the info a subscription of this batch gives the member (taken here, not looked up per event in subs).
  -- Only channels whose join and leave events someone hears: a Pusher presence channel (every member
  -- does), or one a connection listens to ('$presence:<channel>', written before it reads the member
  -- list, so no event after its list goes unwritten). The rest would be rows, ids and NOTIFYs for no
  -- one: a storm's whole herd, subscribing to user channels and rooms nobody watches.
  -- (A watch is looked up once per channel, by index: as an "exists" it was planned as a read of every subscription.)
  delta as (
    select d.channel, d.uid, sum(d.k) as k, max(d.info) as info
    from (select s.channel, s.uid, 1 as k, s.info from subs s union all select u.channel, u.uid, -1, null from unsubs u) d
    where d.channel in (
      select c.channel
      from (select s.channel from subs s union select u.channel from unsubs u) c,
        lateral (select count(*) as n from (select 1 from mesh_subscription l where l.channel = '$presence:' || c.channel limit 1) x) w
      where w.n > 0 or (c.channel like '$pusher:%' and split_part(c.channel, ':', 3) like 'presence-%')
    )
    group by d.channel, d.uid
  ),
  events as (
    select case when b.before = 0 then 'join' else 'leave' end as event, delta.channel, delta.uid, delta.info
    from delta, lateral (select count(*) as before from mesh_subscription s where s.channel = delta.channel and s.uid = delta.uid) b
    where (b.before = 0 and b.before + delta.k > 0) or (b.before > 0 and b.before + delta.k <= 0)
  ),
  -- A Mercure subscriber that went with its instance (killed, or retired with the stream still open:
  -- not closed, so not in down_list) never published the end of its subscriptions: the updates it
  -- would have were written with it (its info's "ended", JSON texts pgmesh made), published here, once.
  mercure_ended as (
    select x.data
    from unsubs u
    join downs w on w.id = u.connection and w.id not in (select d.id from down_list d)
    -- Nested cases: the info is read as JSON only on a Mercure row (whatever order the filters run in).
    cross join lateral json_array_elements_text(case when u.channel = '$mercure' and left(u.info, 1) = '{' then
      case when json_typeof(u.info::json->'ended') = 'array' then u.info::json->'ended' end end) x(data)
  ),
  numbered as (
    select row_number() over (order by o.k, o.channel, o.uid) as ord, o.channel, o.data
    from (
      select 1 as k, '$presence:' || e.channel as channel, e.uid,
        (case when e.event = 'join' and e.info is not null
          then json_build_object('event', e.event, 'uid', e.uid, 'info', e.info::json)
          else json_build_object('event', e.event, 'uid', e.uid) end)::text as data
      from events e
      union all select 2, '$mercure', m.data, m.data from mercure_ended m
    ) o
  ),
  -- The events in one pass: their channels and data (for their rows) and their bodies (for the caller's feed).
  bodies as (
    select array_agg(n.channel order by n.ord) as channels, array_agg(n.data order by n.ord) as datas,
      json_agg(json_build_array(n.channel, n.data, null) order by n.ord)::text as m
    from numbered n
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
  -- Whether a channel was empty before, or is emptied now, needs its subscriptions counted only up to
  -- one more than this batch takes away: a room of 20,000 costs a batch a row or two, not 20,000.
  channel_events as (
    select case when b.before = 0 then 'channel_occupied' else 'channel_vacated' end as type, cd.channel
    from channel_delta cd, lateral (
      select count(*) as before from (select 1 from mesh_subscription s where s.channel = cd.channel limit greatest(-cd.k, 0) + 1) x
    ) b
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
      from subs s where left(s.channel, 1) <> '$' and left(s.uid, 1) <> '$'
    union all select 4, '', jsonb_build_object('type', ce.type, 'channel', ce.channel) from channel_events ce where ce.type = 'channel_occupied' and left(ce.channel, 1) <> '$'
    union all select 4, p.target, jsonb_build_object('name', p.type, 'channel', p.name) from pusher_channel_events p where p.type = 'channel_occupied'
    union all select 5, p.target, jsonb_build_object('name', p.type, 'channel', p.name, 'user_id', p.user_id) from pusher_member_events p where p.type = 'member_added'
    union all select 6, '', jsonb_build_object('type', 'unsubscribe', 'connection', u.connection, 'uid', u.uid, 'channel', u.channel)
      from unsubs u where left(u.channel, 1) <> '$' and left(u.uid, 1) <> '$' and (u.connection, u.channel) in (select x.connection, x.channel from explicit_unsub x)
    union all select 7, p.target, jsonb_build_object('name', p.type, 'channel', p.name, 'user_id', p.user_id) from pusher_member_events p where p.type = 'member_removed'
    union all select 8, '', jsonb_build_object('type', ce.type, 'channel', ce.channel) from channel_events ce where ce.type = 'channel_vacated' and left(ce.channel, 1) <> '$'
    union all select 8, p.target, jsonb_build_object('name', p.type, 'channel', p.name) from pusher_channel_events p where p.type = 'channel_vacated'
    union all select 9, '', jsonb_build_object('type', 'disconnect', 'connection', w.id, 'uid', w.uid, 'transport', w.transport, 'instance', w.instance, 'reason', w.reason)
      from gone_why w where left(w.uid, 1) <> '$'
    union all select 10, '', jsonb_build_object('type', ue.type, 'uid', ue.uid) from user_events ue where ue.type = 'user_offline'
  ),
  -- A target's events are written while its backlog is under its bound (the triggers' counter, as of
  -- this statement): a full backlog takes none, and it never goes past the bound by more than one batch.
  open_targets as (
    select t.key as target from json_each_text(targets) t
    where coalesce((select b.pending from mesh_webhook_backlog b where b.target = t.key), 0) < t.value::int8
  ),
  hooked as (
    -- pgmesh's events carry an id (for de-duplication) and a time; Pusher's format has neither.
    insert into mesh_webhook (target, event)
    select h.target, case when h.target = '' then h.e || jsonb_build_object('id', gen_random_uuid(), 'at', (extract(epoch from clock_timestamp()) * 1000)::int8) else h.e end
    from hook_events h where h.target in (select o.target from open_targets o)
    order by h.ord
  ),
  counted as (
    select json_object_agg(c.target, json_build_array(c.n, case when c.target in (select o.target from open_targets o) then c.n else 0 end))::text as hooks
    from (select h.target, count(*) as n from hook_events h where targets->>h.target is not null group by h.target) c
  )
  select bodies.channels, bodies.datas, bodies.m, counted.hooks
  into channels, datas, messages, hook_counts
  from bodies cross join counted;
  -- The events take their ids last, in a statement of their own: the counter serialises every publish of
  -- the cluster until this transaction commits, and the statement above takes tens of milliseconds in a storm.
  if cardinality(channels) > 0 then
    update mesh_seq set last_id = mesh_seq.last_id + cardinality(channels) returning mesh_seq.last_id into upto;
    insert into mesh_message (id, channel, data, sender)
    select upto - cardinality(channels) + e.ord, e.channel, e.data, null from unnest(channels, datas) with ordinality as e(channel, data, ord);
    return query select upto, cardinality(channels)::int8, messages, hook_counts;
  else
    return query select null::int8, null::int8, messages, hook_counts;
  end if;
end;
$fn$;
`;
