/**
 * Node's ceiling: a bare node:http + `ws` broadcast server with no logic at all —
 * no auth, no store, no protocol. Every socket joins a room; POST /publish takes
 * pgmesh's publish body and sends each `d` to every socket of the room, the same
 * JS loop pgmesh on Node runs. How close pgmesh on Node comes to this is how much
 * its own logic costs there (Bun's ceiling is bun-ceiling.ts).
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const rooms = new Map<string, Set<WebSocket>>();
const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (text += chunk));
  req.on('end', () => {
    const body = JSON.parse(text) as { c: string; d: string } | { c: string; d: string }[];
    for (const m of Array.isArray(body) ? body : [body]) for (const ws of rooms.get(m.c) ?? []) ws.send(m.d);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
  });
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const room = new URL(req.url ?? '/', 'http://x').searchParams.get('room') ?? 'bench';
  let members = rooms.get(room);
  if (members === undefined) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('close', () => members!.delete(ws));
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as { port: number }).port}`);
});
process.on('SIGTERM', () => process.exit(0));
