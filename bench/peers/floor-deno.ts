/** The floor on Deno: Deno.serve and its WebSockets over floor-pipeline.ts. */
import { floorPipeline } from './floor-pipeline.ts';

// Only the few Deno APIs used here, so the bench type-checks without Deno's own typings.
declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): unknown;
  upgradeWebSocket(request: Request): { socket: WebSocket; response: Response };
  addSignalListener(signal: 'SIGTERM', handler: () => void): void;
  exit(code: number): never;
};

const floor = await floorPipeline(Deno.env.get('DATABASE_URL')!);
Deno.serve(
  { port: Number(Deno.env.get('PORT') ?? 0), hostname: '127.0.0.1', onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`) },
  async (req) => {
    if (req.method === 'POST' && new URL(req.url).pathname === '/publish') {
      await floor.publish(await req.text());
      return Response.json({ success: true });
    }
    const room = new URL(req.url).searchParams.get('room') ?? 'bench';
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onopen = () => floor.join(room, socket);
    socket.onclose = () => floor.leave(room, socket);
    return response;
  },
);
Deno.addSignalListener('SIGTERM', () => Deno.exit(0));
