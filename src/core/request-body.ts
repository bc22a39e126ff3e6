/**
 * Reading a request body with a size limit. A declared Content-Length is
 * checked before anything is read, and the body is then read in one go: on
 * Node that keeps @hono/node-server's fast path (touching `request.body` turns
 * its lightweight request into a full WHATWG one, which cost a third of
 * Node's publish rate). Only a body of unknown length is streamed and counted.
 */
import { MeshError } from './errors.ts';

/** The body as text; ERR_TOO_LARGE as soon as it is known to exceed `maxBytes`. */
export async function boundedText(request: Request, maxBytes: number): Promise<string> {
  const declared = request.headers.get('content-length');
  if (declared !== null && !request.headers.has('transfer-encoding')) {
    if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
    return request.text();
  }
  const reader = request.body?.getReader();
  if (!reader) return '';
  const decoder = new TextDecoder();
  let size = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    text += decoder.decode(value, { stream: true });
  }
}

function tooLarge(maxBytes: number): MeshError {
  return new MeshError('ERR_TOO_LARGE', `request body larger than ${maxBytes} bytes`);
}
