/**
 * mesh_publish(channel, data) and mesh_publish(channels[], datas[]): publishing from
 * an application's own transaction. They write to the inbox, not the outbox: taking
 * the id counter would hold it for the application's whole transaction. pgmesh moves
 * committed inbox rows into the outbox in one short statement, woken by the NOTIFY
 * (sent only if the transaction commits). The same limits as the HTTP API hold:
 * channel names, reserved names ($…), MESH_MAX_MESSAGE (from mesh_setting).
 */
export const MESH_PUBLISH = `
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

create or replace function mesh_publish(channels text[], datas text[]) returns void
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
`;
