/**
 * The ceiling: a bare Bun.serve pub/sub with no logic at all — no auth, no
 * store, no protocol. Every socket subscribes to one topic; POST /publish takes
 * pgmesh's publish body and hands each `d` to server.publish(). How close pgmesh
 * on Bun comes to this is how much its own logic costs.
 */
const server = Bun.serve<{ room: string }>({
  port: Number(process.env.PORT ?? 0),
  hostname: '127.0.0.1',
  async fetch(req, srv) {
    if (req.method === 'POST' && new URL(req.url).pathname === '/publish') {
      const body = (await req.json()) as { c: string; d: string } | { c: string; d: string }[];
      for (const m of Array.isArray(body) ? body : [body]) srv.publish(m.c, m.d);
      return Response.json({ success: true });
    }
    const room = new URL(req.url).searchParams.get('room') ?? 'bench';
    return srv.upgrade(req, { data: { room } }) ? undefined : new Response('upgrade expected', { status: 400 });
  },
  websocket: {
    open(ws) {
      ws.subscribe(ws.data.room);
    },
    message() {},
    perMessageDeflate: false,
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
process.on('SIGTERM', () => process.exit(0));
