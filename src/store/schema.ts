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
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
