/**
 * GET /v1/mesh/openapi.json — the server API described as OpenAPI 3.1. Request
 * bodies are generated from the same zod schemas the routes validate with; a
 * test checks that every route the API serves is described here and in
 * docs/server-api.md.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { ChannelList } from './params.ts';
import { PublishBody } from './publish.ts';

type Method = 'get' | 'post' | 'delete';

interface Operation {
  summary: string;
  /** The GatewayClient method this replaces, where there is one. */
  gatewayClient?: string;
  query?: Record<string, string>;
  body?: z.ZodType;
  answer: string;
}

const body = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
const channelsBody = ChannelList;

/** Every route of the server API, by path (OpenAPI template syntax) and method. */
export const OPERATIONS: Record<string, Partial<Record<Method, Operation>>> = {
  '/v1/mesh/publish': {
    post: {
      summary: 'Publish one message or a batch: {"c","d"}, {"channel","data"}, {"all":true,"d"} (every live connection); "exclude" leaves connections out',
      gatewayClient: 'sendToUid / sendToGroup / sendToAll',
      body: PublishBody,
      answer: '{"success":true,"ids":[…],"id":…} once committed',
    },
  },
  '/v1/mesh/users': {
    get: {
      summary: 'Online users, all or those subscribed to a channel, by uid, with the total count',
      gatewayClient: 'getAllUidList / getUidListByGroup / getAllUidCount',
      query: { channel: 'only users subscribed to this channel', limit: 'page size, 1-1000 (100)', cursor: 'the `next` of the previous page' },
      answer: '{"users":[uid…],"count":n,"next":cursor|null}',
    },
  },
  '/v1/mesh/users/{uid}': {
    get: {
      summary: "A user's live connections on every instance",
      gatewayClient: 'isUidOnline / getClientIdByUid / getClientInfo',
      answer: '{"uid","online","connections":[{"id","instance","transport","address","channels","connectedAt"}]}',
    },
  },
  '/v1/mesh/users/{uid}/subscribe': {
    post: { summary: 'Every live connection of the user joins the channels', gatewayClient: 'joinGroup', body: channelsBody, answer: '{"success":true,"id":command id}' },
  },
  '/v1/mesh/users/{uid}/unsubscribe': {
    post: { summary: 'Every live connection of the user leaves the channels', gatewayClient: 'leaveGroup', body: channelsBody, answer: '{"success":true,"id":command id}' },
  },
  '/v1/mesh/users/{uid}/connections': {
    delete: {
      summary: "Closes every connection of the user with close code 4003 and the reason",
      gatewayClient: 'closeClient (all of a uid)',
      query: { reason: 'sent with the close (at most 120 characters)' },
      answer: '{"success":true,"id":command id}',
    },
  },
  '/v1/mesh/connections/{id}/subscribe': {
    post: { summary: 'One connection joins the channels', gatewayClient: 'joinGroup (by client id)', body: channelsBody, answer: '{"success":true,"id":command id}' },
  },
  '/v1/mesh/connections/{id}/unsubscribe': {
    post: { summary: 'One connection leaves the channels', gatewayClient: 'leaveGroup (by client id)', body: channelsBody, answer: '{"success":true,"id":command id}' },
  },
  '/v1/mesh/connections/{id}': {
    delete: {
      summary: 'Closes one connection with close code 4003 and the reason',
      gatewayClient: 'closeClient',
      query: { reason: 'sent with the close (at most 120 characters)' },
      answer: '{"success":true,"id":command id}',
    },
  },
  '/v1/mesh/channels': {
    get: {
      summary: 'Channels with at least one live subscriber, with subscriber and user counts',
      gatewayClient: 'getAllGroupIdList / getClientCountByGroup',
      query: { prefix: 'only channels starting with this', limit: 'page size, 1-1000 (100)', cursor: 'the `next` of the previous page' },
      answer: '{"channels":[{"channel","subscribers","users"}],"count":n,"next":cursor|null}',
    },
  },
  '/v1/mesh/channels/{channel}': {
    get: {
      summary: 'One channel, cluster-wide: whether anyone is subscribed, how many connections and users',
      gatewayClient: 'getClientCountByGroup / getUidCountByGroup',
      answer: '{"channel","occupied":bool,"subscribers":n,"users":n}',
    },
  },
  '/v1/mesh/channels/{channel}/subscribers': {
    delete: { summary: 'Everyone leaves the channel', gatewayClient: 'ungroup', answer: '{"success":true,"id":command id}' },
  },
  '/v1/mesh/channels/{channel}/history': {
    get: {
      summary: 'Stored messages of a channel, oldest first: the last `limit`, or the first `limit` after `since`; subscribe with since=position to go on live',
      query: { since: 'a message id', limit: '1-1000 (100)' },
      answer: '{"channel","messages":[{"id","data","uid"?}],"position":id}',
    },
  },
  '/v1/mesh/stats': {
    get: { summary: 'What this instance holds right now (instance-local), and the webhook queue', answer: '{"instance","sessions","users","channels","position","listening","webhooks"?}' },
  },
  '/v1/mesh/instances': {
    get: {
      summary: "Every instance of the cluster, from any of them: state (ready, draining, full, listen_down, or gone once silent past the TTL) and its last report (runtime, connections by transport and dialect, problems)",
      answer: '{"instances":[{"id","region","state","startedAt","seenAt","report"}],"ttlMs","intervalMs","pusherApps":[id…]}',
    },
  },
  '/v1/mesh/instances/samples': {
    get: {
      summary: "Every instance's counters over the last 15 minutes, one sample per MESH_STATS_INTERVAL: running totals (rates come from two samples) and each interval's p99s",
      query: { after: 'only samples after this time (epoch ms): pass the `last` of the previous answer', step: 'about one sample in `step` (1-900; 1)' },
      answer: '{"samples":[{"instance","at","published","commits","delivered","received","errors","connections","publishP99","webhookP99","rpcP99","lagMs","loopMs"}],"last"}',
    },
  },
  '/v1/mesh/webhooks': {
    get: {
      summary: "Each webhook queue (pgmesh's and each Pusher app's), cluster-wide: waiting, in flight, failing with the last error and the next try, and what all instances sent, failed, gave up",
      answer: '{"targets":[{"target","app","url","pending","inFlight","failing","lastError","nextRetryAt","oldestAt","sent","failures","expired","dropped"}]}',
    },
  },
  '/v1/mesh/openapi.json': {
    get: { summary: 'This document', answer: 'OpenAPI 3.1' },
  },
};

function parametersOf(path: string, op: Operation) {
  const inPath = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
  const inQuery = Object.entries(op.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } }));
  return [...inPath, ...inQuery];
}

/** The OpenAPI document. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, methods] of Object.entries(OPERATIONS)) {
    paths[path] = {};
    for (const [method, op] of Object.entries(methods) as [Method, Operation][]) {
      paths[path]![method] = {
        summary: op.summary,
        ...(op.gatewayClient ? { description: `GatewayClient: ${op.gatewayClient}` } : {}),
        parameters: parametersOf(path, op),
        ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: body(op.body) } } } } : {}),
        responses: {
          '200': { description: op.answer },
          default: { description: 'An error: {"success":false,"code":"ERR_…","error":"<text>"} with the status of its code' },
        },
        security: [{ apiKey: [] }],
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'pgmesh server API', version: '1' },
    components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'MESH_API_KEY' } } },
    paths,
  };
}

/** GET /openapi.json; mount at /v1/mesh. */
export function openApiRoute(): Hono {
  const app = new Hono();
  const document = openApiDocument();
  app.get('/openapi.json', (c) => c.json(document));
  return app;
}
