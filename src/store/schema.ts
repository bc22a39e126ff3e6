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
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
