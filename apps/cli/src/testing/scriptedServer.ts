import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A request as the scripted server saw it. */
export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. /v1/jobs/abc/wait?timeout=5 */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type ScriptedHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/**
 * Sees a request before its body is read; returns true to take it over (it then reads the body
 * itself, e.g. to break the connection part-way). Such requests are recorded with an empty body.
 */
export type RawHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface ScriptedServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1:<random port> answering with a test's script: the CLI talks
 * to it over real sockets (SSE, long-poll, uploads, dropped connections).
 */
export async function startScriptedServer(handler: ScriptedHandler, raw?: RawHandler): Promise<ScriptedServer> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    if (raw?.(req, res) === true) {
      const url = new URL(req.url ?? "/", "http://test");
      requests.push({ method: req.method ?? "GET", url: req.url ?? "/", path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.alloc(0) });
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://test");
      const recorded: RecordedRequest = {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(recorded);
      Promise.resolve(handler(recorded, res)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A URL on which nothing listens (connection refused). */
export async function refusedUrl(): Promise<string> {
  const server = await startScriptedServer(() => undefined);
  await server.close();
  return server.url;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export function sendProblem(res: ServerResponse, status: number, code: string, detail: string, hint: string | null): void {
  res.writeHead(status, { "content-type": "application/problem+json" });
  res.end(JSON.stringify({ type: `https://iaas.dev/problems/${code.toLowerCase()}`, title: code, status, detail, code, hint }));
}

/** Starts an SSE response. */
export function startSse(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
}

/** Writes one SSE event. */
export function writeSse(res: ServerResponse, event: { id?: number | string; event?: string; data?: unknown }): void {
  let text = "";
  if (event.id !== undefined) text += `id: ${event.id}\n`;
  if (event.event !== undefined) text += `event: ${event.event}\n`;
  if (event.data !== undefined) text += `data: ${typeof event.data === "string" ? event.data : JSON.stringify(event.data)}\n`;
  res.write(`${text}\n`);
}
