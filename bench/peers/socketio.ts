/**
 * The peer: Socket.IO 4 with @socket.io/postgres-adapter on Node — what users run
 * today for the same job on the same Postgres. Clients join the room named in
 * their handshake query; POST /publish takes the same body as pgmesh's
 * /v1/mesh/publish ({"c","d"} or an array) and emits each `d` to room `c`.
 * Nothing is stored: Socket.IO has no durable outbox.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/postgres-adapter';
import pg from 'pg';
import { Server } from 'socket.io';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
await pool.query('create table if not exists socket_io_attachments (id bigserial unique, created_at timestamptz default now(), payload bytea)');

const http = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { c: string; d: string } | { c: string; d: string }[];
    for (const m of Array.isArray(body) ? body : [body]) io.to(m.c).emit('m', m.d);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
  });
});
const io = new Server(http, { adapter: createAdapter(pool), transports: ['websocket'], serveClient: false, perMessageDeflate: false });
io.on('connection', (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === 'string') void socket.join(room);
});
http.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(http.address() as AddressInfo).port}`);
});
process.on('SIGTERM', () => process.exit(0));
