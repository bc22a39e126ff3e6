/**
 * mesh_webhook_backlog: how many events each webhook target has waiting, kept
 * by statement triggers on mesh_webhook, so a writer checks the bound
 * (MESH_WEBHOOK_BACKLOG) where it writes, in one indexed row read, instead of
 * counting the queue or trusting a count taken seconds ago.
 */
export const MESH_WEBHOOK_BACKLOG = `
create or replace function mesh_webhook_added() returns trigger
language plpgsql as $$
begin
  insert into mesh_webhook_backlog (target, pending)
  select a.target, count(*) from added a group by a.target
  on conflict (target) do update set pending = mesh_webhook_backlog.pending + excluded.pending;
  return null;
end;
$$;

create or replace function mesh_webhook_removed() returns trigger
language plpgsql as $$
begin
  update mesh_webhook_backlog b set pending = b.pending - r.n
  from (select target, count(*) as n from removed group by target) r
  where b.target = r.target;
  return null;
end;
$$;

drop trigger if exists mesh_webhook_added on mesh_webhook;
create trigger mesh_webhook_added after insert on mesh_webhook
  referencing new table as added for each statement execute function mesh_webhook_added();
drop trigger if exists mesh_webhook_removed on mesh_webhook;
create trigger mesh_webhook_removed after delete on mesh_webhook
  referencing old table as removed for each statement execute function mesh_webhook_removed();
`;
