import http from "node:http";
import net from "node:net";
import { TOKEN_PLACEHOLDER, type FuzzCase, type FuzzTokens } from "./cases.js";

/** What came back for a case. */
export interface Outcome {
  /** The (first) status; null when the connection closed or timed out before one. */
  status: number | null;
  /** Every status line seen (pipelined raw requests can get several). */
  statuses: number[];
  /** Response head and body as text (capped), for the leak checks. */
  text: string;
  /** The time limit hit: before a status, or while a body (a stream) was still coming. */
  timedOut: boolean;
  /** A connection error before any status (ECONNRESET, socket hang up …). */
  error: string | null;
  ms: number;
}

/** Most of a response body kept for the leak checks. */
const MAX_TEXT = 256 * 1024;

export interface TransportOptions {
  base: URL;
  tokens: FuzzTokens;
  /** Time limit of a request to a route that may stream (it is cut off: not a failure). */
  streamTimeoutMs: number;
  /** Time limit of any other request (hitting it is a failure). */
  timeoutMs: number;
  maxSockets: number;
}

/** Sends cases: well-formed ones with node:http over keep-alive sockets, malformed ones as raw bytes. */
export class Transport {
  private readonly agent: http.Agent;

  constructor(private readonly opts: TransportOptions) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets, maxFreeSockets: opts.maxSockets, scheduling: "lifo" });
  }

  send(c: FuzzCase): Promise<Outcome> {
    const limit = c.streaming ? this.opts.streamTimeoutMs : this.opts.timeoutMs;
    return c.raw ? this.sendRaw(c, c.raw, limit) : this.sendHttp(c, limit);
  }

  close(): void {
    this.agent.destroy();
  }

  private token(c: FuzzCase): string | null {
    return c.auth === "none" ? null : this.opts.tokens[c.auth];
  }

  private async sendHttp(c: FuzzCase, limitMs: number): Promise<Outcome> {
    const first = await this.sendHttpOnce(c, limitMs, this.agent);
    // A keep-alive socket the server closed while it sat idle in the pool: the request never
    // reached the API. Node documents this race (request.reusedSocket); send it again, unpooled.
    return first.retry ? this.sendHttpOnce(c, limitMs, false) : first;
  }

  private sendHttpOnce(c: FuzzCase, limitMs: number, agent: http.Agent | false): Promise<Outcome & { retry?: boolean }> {
    const started = performance.now();
    const token = this.token(c);
    const headers: string[] = [];
    for (const [name, value] of c.headers) headers.push(name, value);
    if (token !== null) headers.push("authorization", `Bearer ${token}`);
    if (c.body !== undefined && !c.headers.some(([n]) => n.toLowerCase() === "transfer-encoding")) headers.push("content-length", String(c.body.length));
    // With headers as a list node:http adds no Host: the case's own, else the usual one.
    if (!c.headers.some(([n]) => n.toLowerCase() === "host")) headers.push("host", this.opts.base.host);

    return new Promise((resolve) => {
      let status: number | null = null;
      let text = "";
      let settled = false;
      const finish = (over: Partial<Outcome> & { retry?: boolean }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status, statuses: status === null ? [] : [status], text, timedOut: false, error: null, ms: performance.now() - started, ...over });
      };
      let req: http.ClientRequest;
      try {
        req = http.request({ host: this.opts.base.hostname, port: this.opts.base.port, method: c.method, path: c.path, headers, setHost: false, agent });
      } catch (err) {
        // node:http refused to send it (e.g. a character it does not allow in a path): not the API's doing.
        finish({ error: `client refused: ${(err as Error).message}` });
        return;
      }
      const timer = setTimeout(() => {
        finish({ timedOut: true });
        req.destroy();
      }, limitMs);
      req.on("response", (res) => {
        status = res.statusCode ?? null;
        text = `HTTP/${res.httpVersion} ${res.statusCode} ${res.statusMessage}\n${Object.entries(res.headers)
          .map(([k, v]) => `${k}: ${String(v)}`)
          .join("\n")}\n\n`;
        res.setEncoding("latin1");
        res.on("data", (chunk: string) => {
          if (text.length < MAX_TEXT) text += chunk;
        });
        res.on("end", () => finish({}));
        res.on("error", (err) => finish({ error: status === null ? err.message : null }));
        res.on("aborted", () => finish({}));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (status === null && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
          finish({ retry: true });
          return;
        }
        // Once a status is in, the server may close while the body is still being written (413, 431 …).
        finish({ error: status === null ? `${err.code ?? ""} ${err.message}`.trim() : null });
      });
      req.end(c.body);
    });
  }

  private sendRaw(c: FuzzCase, raw: { bytes: string; halfClose: boolean }, limitMs: number): Promise<Outcome> {
    const started = performance.now();
    const bytes = Buffer.from(raw.bytes.replaceAll(TOKEN_PLACEHOLDER, this.opts.tokens.admin), "latin1");
    return new Promise<Outcome>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const socket = net.connect({ host: this.opts.base.hostname, port: Number(this.opts.base.port) });
      const finish = (over: Partial<Outcome>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const text = Buffer.concat(chunks).toString("latin1");
        const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/\d\.\d (\d{3})/g)].map((m) => Number(m[1]));
        // An interim 100 Continue is not the answer.
        resolve({ status: statuses.find((s) => s >= 200) ?? statuses[0] ?? null, statuses, text, timedOut: false, error: null, ms: performance.now() - started, ...over });
      };
      const timer = setTimeout(() => finish({ timedOut: true }), limitMs);
      socket.on("data", (chunk: Buffer) => {
        if (size < MAX_TEXT) chunks.push(chunk);
        size += chunk.length;
      });
      socket.on("end", () => finish({}));
      socket.on("close", () => finish({}));
      // A reset after (part of) an answer is the server hanging up on garbage: the bytes read count.
      socket.on("error", (err: NodeJS.ErrnoException) => finish({ error: size === 0 ? `${err.code ?? ""} ${err.message}`.trim() : null }));
      socket.on("connect", () => {
        socket.write(bytes);
        if (raw.halfClose) socket.end();
      });
    });
  }
}
