/**
 * Reading a body with a size limit: a request's, or an answer pgmesh got from
 * another server. A declared Content-Length is checked before anything is
 * read, and the body is then read in one go: on Node that keeps
 * @hono/node-server's fast path (touching `request.body` turns its lightweight
 * request into a full WHATWG one, which cost a third of Node's publish rate).
 * Only a body of unknown length is streamed and counted.
 */
import { MeshError } from './errors.ts';

/** What has a body to read: a Request or a Response. */
type WithBody = Pick<Request, 'headers' | 'body' | 'text'>;

/** The body as text; ERR_TOO_LARGE as soon as it is known to exceed `maxBytes`. */
export async function boundedText(message: WithBody, maxBytes: number, what = 'request body'): Promise<string> {
  const declared = message.headers.get('content-length');
  if (declared !== null && !message.headers.has('transfer-encoding')) {
    if (Number(declared) > maxBytes) throw tooLarge(what, maxBytes);
    return message.text();
  }
  const reader = message.body?.getReader();
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
      throw tooLarge(what, maxBytes);
    }
    text += decoder.decode(value, { stream: true });
  }
}

function tooLarge(what: string, maxBytes: number): MeshError {
  return new MeshError('ERR_TOO_LARGE', `${what} larger than ${maxBytes} bytes`);
}
