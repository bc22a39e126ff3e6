/** The floor on Bun: Bun.serve and its WebSockets over floor-pipeline.ts. */
import { floorPipeline } from './floor-pipeline.ts';

const floor = await floorPipeline(process.env.DATABASE_URL!);
const server = Bun.serve<{ room: string }>({
  port: Number(process.env.PORT ?? 0),
  hostname: '127.0.0.1',
  async fetch(req, srv) {
    if (req.method === 'POST' && new URL(req.url).pathname === '/publish') {
      await floor.publish(await req.text());
      return Response.json({ success: true });
    }
    const room = new URL(req.url).searchParams.get('room') ?? 'bench';
    return srv.upgrade(req, { data: { room } }) ? undefined : new Response('upgrade expected', { status: 400 });
  },
  websocket: {
    open(ws) {
      floor.join(ws.data.room, ws);
    },
    close(ws) {
      floor.leave(ws.data.room, ws);
    },
    message() {},
    perMessageDeflate: false,
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
process.on('SIGTERM', () => process.exit(0));
