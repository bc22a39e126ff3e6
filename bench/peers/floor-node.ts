/** The floor on Node: node:http and `ws` over floor-pipeline.ts. */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { floorPipeline } from './floor-pipeline.ts';

const floor = await floorPipeline(process.env.DATABASE_URL!);
const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (text += chunk));
  req.on('end', () => {
    floor.publish(text).then(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}'),
      () => res.writeHead(503).end(),
    );
  });
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const room = new URL(req.url ?? '/', 'http://x').searchParams.get('room') ?? 'bench';
  floor.join(room, ws);
  ws.on('close', () => floor.leave(room, ws));
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as { port: number }).port}`);
});
process.on('SIGTERM', () => process.exit(0));
