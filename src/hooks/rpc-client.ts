/**
 * Sends a client's `rpc` op to MESH_RPC_URL, signed like the webhooks: POST
 * `{"method","data","uid","connection","instance"}`; the backend answers 2xx with
 * `{"result": …, "publish": [{"c","d"}]}`, or refuses with `{"error": {"code",
 * "message"}}` (any status). Nothing else reaches the client: a backend that
 * times out, fails or answers something else is ERR_RPC_TIMEOUT or
 * ERR_RPC_UNAVAILABLE.
 */
import { z } from 'zod';
import type { Backend, RpcAnswer, RpcCall } from '../core/backend.ts';
import { canonicalChannel } from '../core/channels.ts';
import { MeshError } from '../core/errors.ts';
import { SIGNATURE_HEADER, sign } from './signature.ts';
import { type Answer, RedirectRefused, callOut } from '../core/outbound.ts';
import { readJson } from '../core/edge-input.ts';

// Published as the caller's, so `d` is data as a client's publish carries it: any JSON value.
const data = z.unknown().refine((v) => v !== undefined, 'is required').transform((v) => JSON.stringify(v));
const RpcAnswerBody = z.union([
  z.object({
    error: z.object({ code: z.union([z.string().max(128), z.number()]), message: z.string().max(1000).default(''), data: z.unknown().optional() }),
  }),
  z.object({
    result: z.unknown().optional(),
    publish: z.array(z.object({ c: z.string(), d: data })).max(100).optional(),
  }),
]);

/** Most bytes of a backend's answer that are read. */
const MAX_ANSWER = 1 << 20;

export interface RpcClientOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  instance: string;
  /** Deepest JSON an answer may nest (MESH_MAX_JSON_DEPTH). */
  maxJsonDepth: number;
  /** Told of each call: how long it took, and whether the backend answered (a refusal is an answer). */
  onAnswer?: (seconds: number, ok: boolean) => void;
}

/** The backend behind MESH_RPC_URL. */
export class RpcClient implements Backend {
  constructor(readonly options: RpcClientOptions) {}

  async rpc(call: RpcCall): Promise<RpcAnswer> {
    const started = performance.now();
    let answered = false;
    try {
      const answer = await this.#call(call);
      answered = true;
      return answer;
    } catch (err) {
      answered = err instanceof MeshError && err.code === 'ERR_RPC_REFUSED';
      throw err;
    } finally {
      this.options.onAnswer?.((performance.now() - started) / 1000, answered);
    }
  }

  async #call(call: RpcCall): Promise<RpcAnswer> {
    const body = JSON.stringify({ method: call.method, data: call.data, uid: call.uid, connection: call.connection, instance: this.options.instance });
    let response: Answer;
    try {
      response = await callOut(
        this.options.url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(this.options.secret, body) },
          body,
          signal: AbortSignal.timeout(this.options.timeoutMs),
        },
        MAX_ANSWER,
      );
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new MeshError('ERR_RPC_TIMEOUT', `the backend did not answer ${call.method} within ${this.options.timeoutMs} ms`);
      if (err instanceof MeshError || err instanceof RedirectRefused) throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend ${err.message} for ${call.method}`, { cause: err });
      throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend could not be reached for ${call.method}`, { cause: err });
    }
    let answer: z.infer<typeof RpcAnswerBody>;
    try {
      answer = RpcAnswerBody.parse(readJson(response.text, this.options.maxJsonDepth, 'answer'));
    } catch (err) {
      throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend answered ${call.method} with HTTP ${response.status} and no usable JSON`, { cause: err });
    }
    if ('error' in answer) {
      throw new MeshError('ERR_RPC_REFUSED', answer.error.message || String(answer.error.code), { detail: { rpc: answer.error } });
    }
    if (!response.ok) throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend answered ${call.method} with HTTP ${response.status}`);
    const publish = (answer.publish ?? []).map((m) => {
      try {
        return { channel: canonicalChannel(m.c), data: m.d };
      } catch (err) {
        throw new MeshError('ERR_RPC_UNAVAILABLE', `the backend answered ${call.method} with a message for ${JSON.stringify(m.c.slice(0, 64))}, not a channel`, { cause: err });
      }
    });
    return { result: answer.result ?? null, publish };
  }
}
