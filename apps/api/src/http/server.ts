import http, { type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";

export interface ServerOptions {
  /** PEM certificate (chain) and key: HTTPS; absent: plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** Largest request head; a larger one gets 431 from Node itself. */
  maxHeaderBytes: number;
  /** Time to receive the request head (slowloris). */
  headersTimeoutMs: number;
  /**
   * Time to receive the whole request, body included; 0: none. Responses (event streams, console
   * follow, long-polls) are not bounded by it: it ends when the request is read.
   */
  requestTimeoutMs: number;
  /** A request body that sends nothing for this long is cut off (the socket is destroyed); 0: never. */
  bodyIdleTimeoutMs: number;
}

export const DEFAULT_SERVER_OPTIONS: ServerOptions = { maxHeaderBytes: 16 * 1024, headersTimeoutMs: 30_000, requestTimeoutMs: 0, bodyIdleTimeoutMs: 120_000 };

export type ApiServer = http.Server | https.Server;

/**
 * Bounds a request body's silences: the socket's idle timeout runs while the body is read and is
 * lifted once it is whole (a slow answer, an event stream or a keep-alive wait is not a stalled
 * body). Node destroys a socket whose timeout fires when nothing else listens for it.
 */
function bodyIdleTimeout(ms: number): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const hasBody = req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
    if (!hasBody || req.complete) return;
    const socket = req.socket;
    socket.setTimeout(ms);
    const lift = () => {
      // After the answer, Node runs the keep-alive timeout on this socket: leave it alone.
      if (!res.writableFinished) socket.setTimeout(0);
    };
    req.once("end", lift);
    req.once("close", lift);
  };
}

/** The API's HTTP or HTTPS server (not listening yet) with the head, time and body limits. */
export function createApiServer(app: RequestListener, options: ServerOptions): ApiServer {
  const common: http.ServerOptions = {
    maxHeaderSize: options.maxHeaderBytes,
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
  };
  const server: ApiServer = options.tls ? https.createServer({ ...common, cert: options.tls.cert, key: options.tls.key }, app) : http.createServer(common, app);
  if (options.bodyIdleTimeoutMs > 0) server.prependListener("request", bodyIdleTimeout(options.bodyIdleTimeoutMs));
  return server;
}

/** Starts `server` on `host:port`; resolves to the port it got (0 picks one). */
export async function listen(server: ApiServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** The server options the API's environment asks for; reads the TLS files (naming the one it cannot read). */
export async function serverOptionsFromEnv(env: {
  IAAS_TLS_CERT?: string | undefined;
  IAAS_TLS_KEY?: string | undefined;
  IAAS_MAX_HEADER_BYTES: number;
  IAAS_HEADERS_TIMEOUT_SECONDS: number;
  IAAS_REQUEST_TIMEOUT_SECONDS: number;
  IAAS_BODY_IDLE_TIMEOUT_SECONDS: number;
}): Promise<ServerOptions> {
  const read = async (name: string, file: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`cannot read ${name} ${file}: ${(err as Error).message}`);
    }
  };
  const tls =
    env.IAAS_TLS_CERT !== undefined && env.IAAS_TLS_KEY !== undefined
      ? { cert: await read("IAAS_TLS_CERT", env.IAAS_TLS_CERT), key: await read("IAAS_TLS_KEY", env.IAAS_TLS_KEY) }
      : undefined;
  return {
    tls,
    maxHeaderBytes: env.IAAS_MAX_HEADER_BYTES,
    headersTimeoutMs: env.IAAS_HEADERS_TIMEOUT_SECONDS * 1000,
    requestTimeoutMs: env.IAAS_REQUEST_TIMEOUT_SECONDS * 1000,
    bodyIdleTimeoutMs: env.IAAS_BODY_IDLE_TIMEOUT_SECONDS * 1000,
  };
}
