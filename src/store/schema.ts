/**
 * The one schema both stores apply, as numbered migrations of its tables. A
 * database migrated by a newer pgmesh is refused rather than written to.
 *
 * The plpgsql functions live one per file in functions/; the migrations that
 * install them do it with `create or replace`, so what a database runs is the
 * latest install, whatever history it came by. Editing a function therefore
 * takes a new migration that installs it again (a test keeps the two in step:
 * FUNCTIONS_DIGEST).
 *
 * Kept as TypeScript strings rather than .sql files so that no runtime has to
 * read files to start, and a bundled build carries its schema with it.
 */
import { MESH_CLUSTER_APPLY } from './functions/mesh-cluster-apply.ts';
import { MESH_PUBLISH } from './functions/mesh-publish.ts';
import { MESH_WEBHOOK_BACKLOG } from './functions/mesh-webhook-backlog.ts';

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
      -- statement, woken by mesh_publish()'s NOTIFY (sent only if the transaction commits).
      create table mesh_inbox (
        seq bigserial primary key,
        channel text not null,
        data text not null,
        created_at timestamptz not null default now()
      );
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
    `,
  },
  {
    // A webhook batch's lease names its holder: only the sender that claimed a batch may deliver or
    // retry it, so one slower than its lease cannot delete or release a batch claimed again since.
    version: 8,
    sql: `alter table mesh_webhook add column claim_token uuid;`,
  },
  {
    version: 9,
    sql: `
      -- Each webhook target's waiting events, kept by triggers (functions/mesh-webhook-backlog.ts):
      -- the backlog bound is checked where events are written, not from a count taken earlier.
      create table mesh_webhook_backlog (
        target text primary key,
        pending int8 not null
      );
      insert into mesh_webhook_backlog (target, pending) select target, count(*) from mesh_webhook group by target;

      -- Superseded by mesh_cluster_apply() since version 7.
      drop function if exists mesh_presence_apply(text, text, interval);
      -- Subscriptions whose connection is gone (older versions could leave them): reaped.
      delete from mesh_subscription s where not exists (select 1 from mesh_connection c where c.id = s.connection);
    ` + installFunctions(),
  },
  {
    // A Mercure subscriber resumes after an update's own id (Last-Event-ID): found by this index.
    version: 10,
    sql: `create index mesh_message_mercure_event on mesh_message ((data::json->>'i'), id) where channel = '$mercure';`,
  },
  {
    // mesh_cluster_apply(): pgmesh's subscribe/unsubscribe webhooks leave out connections that are not
    // pgmesh users ($-uids: a Mercure subscriber hearing a pgmesh channel), as connect and user_online do.
    version: 11,
    sql: installFunctions(),
  },
  {
    version: 12,
    sql: `
      -- The operator's console (and GET /v1/mesh/instances): what each instance last said about
      -- itself (runtime, state, connections by kind, problems), written every MESH_STATS_INTERVAL.
      alter table mesh_instance add column stats jsonb;
      -- Where a connection comes from (the client's address as the proxies tell it), for the console.
      alter table mesh_connection add column address text;
      -- Each instance's counters over time, for the console's charts: one row per instance per
      -- interval, kept 15 minutes by their writer, and the rows of instances long gone by anyone.
      create table mesh_instance_sample (
        instance text not null,
        at timestamptz not null,
        sample jsonb not null,
        primary key (instance, at)
      );
      create index mesh_instance_sample_at on mesh_instance_sample (at);
    ` + installFunctions(),
  },
  {
    // mesh_cluster_apply(): a channel's occupied/vacated check counts its subscriptions only as far as
    // the batch needs (a connect storm into one big room cost every batch the whole room).
    version: 13,
    sql: installFunctions(),
  },
  {
    // mesh_cluster_apply(): a batch reads only the connections and subscriptions it touches (by index),
    // not every one of the cluster, and finds a member's info without a search per event.
    version: 14,
    sql: installFunctions(),
  },
  {
    // mesh_cluster_apply() reads by index whatever the statistics say: a plan made while the tables
    // grew faster than autovacuum analysed them scanned every subscription per new channel; and it
    // looks a subscription's connection up by id, not among all of the instance's connections; and it
    // publishes the end of a Mercure subscriber's subscriptions when its instance goes with it open.
    version: 15,
    sql: installFunctions(),
  },
  {
    // mesh_cluster_apply() takes ids for its presence events in a statement of its own, after the
    // batch is applied: the id counter (every publish of the cluster waits for it) is held for about
    // a millisecond before the commit, not for the whole batch.
    version: 16,
    sql: installFunctions(),
  },
  {
    // mesh_cluster_apply() writes a channel's join and leave events only where someone listens to
    // them: a Pusher presence channel, or a channel a connection watches ('$presence:<channel>' rows);
    // and it gathers the events' channels, data and bodies in one pass.
    version: 17,
    sql: installFunctions(),
  },
];

/** Every function in functions/, as one script of create-or-replace statements. */
function installFunctions(): string {
  return [MESH_PUBLISH, MESH_WEBHOOK_BACKLOG, MESH_CLUSTER_APPLY].join('\n');
}

/**
 * The digest of functions/ as the latest migration installs it. A test computes it again: when a
 * function changes, add a migration ending in `+ installFunctions()`, then update this.
 */
export const FUNCTIONS_DIGEST = '6f2715093b3b1ebc23fa24f400b421323ac18995f49a859cf33a7ca0ad48ee56';

/** The functions' source, as installFunctions() gives it (for the digest test). */
export const FUNCTIONS_SQL = installFunctions();

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
