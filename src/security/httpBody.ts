/**
 * Request bodies are bounded before they are in memory (issue 12, point 8), for every HTTP
 * function: Content-Length is checked first, then the body is read as a stream, counting bytes,
 * and reading stops (413) as soon as it passes the route's limit. In Azure the worker receives
 * bodies as streams because functions/index.ts enables HTTP streaming
 * (https://learn.microsoft.com/en-us/azure/azure-functions/functions-reference-node?pivots=nodejs-model-v4#http-streams);
 * the dev host has its own overall cap in front of this.
 */
// @azure/functions is CommonJS and Node's ESM loader does not see HttpRequest among its named
// exports (dist runs as ESM in Azure): the class is reached through the default export.
import azf from "@azure/functions";
import type { HttpHandler, HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

const tooLarge = (): HttpResponseInit => ({ status: 413, headers: { connection: "close" }, jsonBody: { error: "PAYLOAD_TOO_LARGE" } });

/** The body, or undefined when it passed `maxBytes` (reading stopped there). */
export async function readCapped(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Buffer | undefined> {
  if (!body) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * Wraps a handler so it only ever sees a body of at most `maxBytes` (0: the route takes none).
 * The handler gets a request with the same method, URL (so the same query), headers and params, and the
 * bounded body.
 */
export function withBodyLimit(handler: HttpHandler, maxBytes: number): HttpHandler {
  return async (req: HttpRequest, ctx: InvocationContext) => {
    const declared = req.headers.get("content-length");
    if (declared !== null && (!/^\d{1,15}$/.test(declared.trim()) || Number(declared) > maxBytes)) return tooLarge();
    const bytes = await readCapped(req.body as ReadableStream<Uint8Array> | null, maxBytes);
    if (bytes === undefined) return tooLarge();
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => { headers[k] = v; });
    const bounded = new azf.HttpRequest({ method: req.method, url: req.url, headers, params: { ...req.params }, body: bytes.length ? { bytes } : undefined });
    return handler(bounded, ctx);
  };
}
