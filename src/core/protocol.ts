/**
 * The client protocol: the op frames clients send (both seed dialects, connmix
 * `args` arrays and named fields) and the reply frames they get back.
 *
 * A frame is first lifted from its dialect into named fields, then validated by
 * one zod schema per op; `Command` is the validated result every transport runs.
 */
import { z } from 'zod';
import { MeshError, badArgs } from './errors.ts';
import { BROADCAST, USER_PREFIX, uidOfTarget } from './channels.ts';
import { readJson } from './edge-input.ts';

const rid = z.union([z.string().max(128), z.number().finite()]).optional();
const token = z.string({ error: 'token must be a string' }).min(1, 'token is empty').max(16_384, 'token too long');
const channel = z.string({ error: 'channel must be a string' });
const channels = z.array(channel, { error: 'channels must be a list of strings' }).min(1, 'no channel given').max(256, 'too many channels in one frame');
const cursorId = z.number({ error: 'must be a message id' }).int().nonnegative();
const data = z.unknown().refine((d) => d !== undefined, 'data is required');
const uid = z.union([z.string().min(1), z.number()], { error: 'user must be a string or number' }).transform(String);

export const AuthCommand = z.object({ op: z.literal('auth'), token, rid });
export const RefreshCommand = z.object({ op: z.literal('refresh'), token, rid });
export const SubscribeCommand = z.object({
  op: z.literal('subscribe'),
  channels,
  since: cursorId.optional(),
  /** Also deliver the channels' join/leave events, and answer with their current members. */
  presence: z.boolean({ error: 'presence must be true or false' }).optional(),
  rid,
});
export const UnsubscribeCommand = z.object({ op: z.literal('unsubscribe'), channels, rid });
export const PublishCommand = z.object({
  op: z.literal('publish'),
  /** The op name the client used (publish, sendtoroom, sendtouser, sendbroadcast); replies echo it. */
  via: z.enum(['publish', 'sendtoroom', 'sendtouser', 'sendbroadcast']),
  channel,
  data,
  rid,
});
export const AckCommand = z.object({ op: z.literal('ack'), id: cursorId, channel: channel.optional(), rid });
export const PingCommand = z.object({ op: z.literal('ping'), rid });
/** A call the application's backend answers (MESH_RPC_URL). */
export const RpcCommand = z.object({
  op: z.literal('rpc'),
  method: z.string({ error: 'method must be a string' }).min(1, 'method is empty').max(128, 'method name too long'),
  data: z.unknown().optional(),
  rid,
});

export const Command = z.discriminatedUnion('op', [
  AuthCommand,
  RefreshCommand,
  SubscribeCommand,
  UnsubscribeCommand,
  PublishCommand,
  AckCommand,
  PingCommand,
  RpcCommand,
]);
export type Command = z.infer<typeof Command>;

type Fields = Record<string, unknown>;

/** Lifts either dialect of a frame into the named fields the schemas expect. */
function lift(frame: Fields): Fields | undefined {
  const args = Array.isArray(frame.args) ? frame.args : [];
  const pick = (name: string, at: number) => (name in frame ? frame[name] : args[at]);
  const rid = frame.rid;
  switch (frame.op) {
    case 'auth':
    case 'refresh':
      return { op: frame.op, token: pick('token', 0), rid };
    case 'subscribe':
    case 'unsubscribe': {
      const list = 'channels' in frame ? frame.channels : 'channel' in frame ? [frame.channel] : frame.args;
      return { op: frame.op, channels: list, since: frame.since, ...(frame.op === 'subscribe' ? { presence: frame.presence } : {}), rid };
    }
    case 'publish':
    case 'sendtoroom':
      return { op: 'publish', via: frame.op, channel: pick('channel', 0), data: pick('data', 1), rid };
    case 'sendtouser': {
      const to = uid.safeParse(pick('user', 0));
      if (!to.success) throw badArgs(to.error.issues, 'sendtouser: ');
      return { op: 'publish', via: 'sendtouser', channel: USER_PREFIX + uidOfTarget(to.data), data: pick('data', 1), rid };
    }
    case 'sendbroadcast':
      return { op: 'publish', via: 'sendbroadcast', channel: BROADCAST, data: pick('data', 0), rid };
    case 'ack':
      return { op: 'ack', id: pick('id', 0), channel: frame.channel, rid };
    case 'ping':
      return { op: 'ping', rid };
    case 'rpc':
      return { op: 'rpc', method: pick('method', 0), data: pick('data', 1), rid };
    default:
      return undefined;
  }
}

/** The op name to echo in a reply to `frame`, whatever state it is in. */
export function replyOp(frame: unknown): string {
  const op = typeof frame === 'object' && frame !== null ? (frame as Fields).op : undefined;
  return typeof op === 'string' && op.length <= 64 ? op : 'error';
}

/** Decodes one text frame, or throws ERR_BAD_JSON, ERR_TOO_DEEP or ERR_BAD_TEXT. */
export function decodeFrame(text: string, maxDepth: number): unknown {
  return readJson(text, maxDepth, 'frame');
}

/** The `rid` of a frame to echo in its reply: only the shapes a request id may have (a string of up to 128 characters, a finite number). */
export function ridOf(frame: unknown): string | number | undefined {
  const rid = typeof frame === 'object' && frame !== null ? (frame as Fields).rid : undefined;
  if (typeof rid === 'string') return rid.length <= 128 ? rid : undefined;
  return typeof rid === 'number' && Number.isFinite(rid) ? rid : undefined;
}

/** Validates a decoded frame into a Command, or throws a MeshError saying what is wrong with it. */
export function parseCommand(frame: unknown): Command {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    throw new MeshError('ERR_BAD_ARGS', 'frame must be a JSON object with an "op"');
  }
  const op = (frame as Fields).op;
  if (typeof op !== 'string') throw new MeshError('ERR_BAD_ARGS', 'frame has no "op"');
  const fields = lift(frame as Fields);
  if (fields === undefined) throw new MeshError('ERR_UNKNOWN_OP', `unknown op ${JSON.stringify(op.slice(0, 64))}`);
  const parsed = Command.safeParse(fields);
  if (!parsed.success) throw badArgs(parsed.error.issues, `${op}: `);
  return parsed.data;
}

/** The answer to one op, as the dispatcher returns it; each transport encodes it. */
export type Reply =
  | { kind: 'ok'; op: string; rid?: unknown; fields?: Fields }
  | { kind: 'error'; op: string; rid?: unknown; error: MeshError }
  | { kind: 'pong'; rid?: unknown };

/** A success reply. */
export const ok = (op: string, rid: unknown, fields?: Fields): Reply => ({ kind: 'ok', op, rid, fields });

/** An error reply. */
export const failed = (op: string, rid: unknown, error: MeshError): Reply => ({ kind: 'error', op, rid, error });

/** The JSON text of a reply frame: success in both seed styles (`success` and `result`); errors with text in `error` and `msg`, the numeric `code` and the stable `reason`. */
export function encodeReply(reply: Reply): string {
  const rid = reply.rid === undefined ? {} : { rid: reply.rid };
  if (reply.kind === 'pong') return JSON.stringify({ op: 'pong', ...rid });
  if (reply.kind === 'ok') return JSON.stringify({ op: reply.op, success: true, result: true, ...reply.fields, ...rid });
  const e = reply.error;
  return JSON.stringify({ op: reply.op, success: false, error: e.message, code: e.num, msg: e.message, reason: e.code, ...e.detail, ...rid });
}
