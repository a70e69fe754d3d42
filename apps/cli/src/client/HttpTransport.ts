import type { z } from "zod";
import { ExitCode, PROJECT_HEADER } from "@iaas/contracts";
import { CliError, interruptedError } from "../CliError.js";
import { parseResponse } from "./parseResponse.js";
import { problemError } from "./problemError.js";
import { sleep } from "./sleep.js";

export interface HttpTransportOptions {
  /**
   * Base URL without a trailing slash, e.g. http://127.0.0.1:8080; or several API replicas
   * separated by commas, tried in turn when one cannot be reached.
   */
  baseUrl: string;
  token: string | null;
  /** The project to act in, sent as `X-Iaas-Project` (name or id); null: none. */
  project?: string | null;
  /** Sent as `Idempotency-Key` on every POST, PUT and DELETE of this invocation. */
  idempotencyKey: string;
  fetch?: typeof fetch;
  /** Aborted on Ctrl-C: every request stops and reports "interrupted". */
  interrupt?: AbortSignal;
  /** Pauses between retries after a connection error (default 250 ms, then 1 s). */
  retryDelaysMs?: readonly number[];
  /** Bound on an ordinary request (default 30 s); streams and uploads are not bounded. */
  requestTimeoutMs?: number;
  /** Hint for 401/403 answers. */
  authHint?: string;
  /** Hint when the API cannot be reached. */
  unreachableHint?: string;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestSpec {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path under the base URL; also names the endpoint in messages. */
  path: string;
  /** A full URL to use instead of base URL + path (the token goes only to the API's own origin). */
  url?: string;
  query?: Query;
  json?: unknown;
  body?: AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
  accept?: string;
  signal?: AbortSignal;
  /** undefined: the client's default bound; null: none (streams). */
  timeoutMs?: number | null;
  /** Retry connection errors (default true; never for streamed bodies). */
  retry?: boolean;
}

/**
 * HTTP plumbing under the ApiClient: auth, project and idempotency headers, retries of connection
 * errors, timeouts, Ctrl-C, problem+json errors and parsing answers with the contracts' schemas.
 */
export class HttpTransport {
  /** The API replicas; `current` is the one in use (the next is tried when it cannot be reached). */
  private readonly bases: string[];
  private current = 0;
  private readonly token: string | null;
  private readonly project: string | null;
  private readonly idempotencyKey: string;
  private readonly fetchFn: typeof fetch;
  private readonly interrupt: AbortSignal | undefined;
  private readonly retryDelaysMs: readonly number[];
  private readonly requestTimeoutMs: number;
  private readonly authHint: string;
  private readonly unreachableHint: string;

  constructor(options: HttpTransportOptions) {
    this.bases = options.baseUrl
      .split(",")
      .map((u) => u.trim().replace(/\/+$/, ""))
      .filter((u) => u !== "");
    this.token = options.token;
    this.project = options.project ?? null;
    this.idempotencyKey = options.idempotencyKey;
    this.fetchFn = options.fetch ?? fetch;
    this.interrupt = options.interrupt;
    this.retryDelaysMs = options.retryDelaysMs ?? [250, 1000];
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.authHint = options.authHint ?? "log in with `iaas login --url URL --token T`, or set IAAS_TOKEN";
    this.unreachableHint = options.unreachableHint ?? "point the CLI at the API with --url or IAAS_URL";
  }

  /** The API replica in use. */
  get baseUrl(): string {
    return this.bases[this.current] ?? "";
  }

  /** The default bound on an ordinary request, in milliseconds. */
  get defaultTimeoutMs(): number {
    return this.requestTimeoutMs;
  }

  /** Resolves a URL the API handed out (absolute, or a path under the API). */
  resolve(urlOrPath: string): string {
    if (/^https?:\/\//i.test(urlOrPath)) return urlOrPath;
    if (urlOrPath.startsWith("/")) return `${this.baseUrl}${urlOrPath}`;
    return new URL(urlOrPath, `${this.baseUrl}/`).toString();
  }

  async json<S extends z.ZodType>(schema: S, spec: RequestSpec): Promise<z.output<S>> {
    return this.parse(schema, await this.send(spec), spec);
  }

  /** Reads `res` (the answer to `spec`) as JSON and parses it with `schema`. */
  async parse<S extends z.ZodType>(schema: S, res: Response, spec: RequestSpec): Promise<z.output<S>> {
    const endpoint = `${spec.method} ${spec.path}`;
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      throw this.failure(err, spec, `reading the answer to ${endpoint}`);
    }
    return parseResponse(schema, body, endpoint);
  }

  async send(spec: RequestSpec): Promise<Response> {
    const endpoint = `${spec.method} ${spec.path}`;
    const headers: Record<string, string> = { accept: spec.accept ?? "application/json", ...spec.headers };
    if (this.isOwnOrigin(spec.url)) {
      if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
      if (this.project !== null) headers[PROJECT_HEADER] = this.project;
    }
    if (spec.method !== "GET" && spec.method !== "HEAD") headers["idempotency-key"] = this.idempotencyKey;
    let body: string | AsyncIterable<Uint8Array> | undefined = spec.body;
    if (spec.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.json);
    }
    const delays = spec.retry === false || spec.body !== undefined ? [] : this.retryDelaysMs;
    // Each replica that cannot be reached is passed over once before the retry delays apply; the
    // same Idempotency-Key makes a POST the first replica did receive harmless on the next.
    let failovers = spec.retry === false ? 0 : this.bases.length - 1;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.fetchFn(spec.url ?? this.url(spec.path, spec.query), {
          method: spec.method,
          headers,
          body,
          signal: this.signalFor(spec),
          ...(spec.body === undefined ? {} : { duplex: "half" as const }),
        });
        if (!res.ok) {
          const text = await res.text().catch(() => "");
          throw problemError(res.status, res.statusText, text, { endpoint, authHint: this.authHint, baseUrl: this.baseUrl });
        }
        return res;
      } catch (err) {
        if (err instanceof CliError) throw err;
        const failure = this.failure(err, spec, endpoint);
        if (failure instanceof CliError && failure.retryable && failovers > 0 && spec.url === undefined && spec.body === undefined) {
          failovers--;
          attempt--;
          this.current = (this.current + 1) % this.bases.length;
          continue;
        }
        const delay = delays[attempt];
        if (!(failure instanceof CliError) || !failure.retryable || delay === undefined) throw failure;
        await sleep(delay, this.interrupt).catch(() => {
          throw interruptedError();
        });
      }
    }
  }

  /** Classifies a thrown fetch/stream error: interruption, the caller's abort, timeout or connection failure. */
  private failure(err: unknown, spec: RequestSpec, what: string): Error {
    if (err instanceof CliError) return err;
    if (this.interrupt?.aborted) return interruptedError();
    if (spec.signal?.aborted) return err instanceof Error ? err : new Error(String(err));
    if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      return new CliError(`the IaaS API at ${this.baseUrl} did not answer ${what} in time`, {
        exitCode: ExitCode.UNREACHABLE,
        hint: "check the API's health with `curl <url>/readyz`, or retry",
        retryable: true,
      });
    }
    return new CliError(`cannot reach the IaaS API at ${this.baseUrl}: ${describeNetworkError(err)}; is it running? (npm run up)`, {
      exitCode: ExitCode.UNREACHABLE,
      hint: this.unreachableHint,
      retryable: true,
      cause: err,
    });
  }

  /** True for a URL on the API's own origin (or none, i.e. base URL + path). */
  private isOwnOrigin(url: string | undefined): boolean {
    if (url === undefined) return true;
    try {
      const origin = new URL(url).origin;
      return this.bases.some((b) => new URL(b).origin === origin);
    } catch {
      return false;
    }
  }

  private signalFor(spec: RequestSpec): AbortSignal | undefined {
    const signals: AbortSignal[] = [];
    if (this.interrupt !== undefined) signals.push(this.interrupt);
    if (spec.signal !== undefined) signals.push(spec.signal);
    const timeout = spec.timeoutMs === undefined ? this.requestTimeoutMs : spec.timeoutMs;
    if (timeout !== null) signals.push(AbortSignal.timeout(timeout));
    if (signals.length === 0) return undefined;
    return signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  }

  private url(path: string, query: Query | undefined): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) params.set(key, String(value));
    }
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs === "" ? "" : `?${qs}`}`;
  }
}

/** "connect ECONNREFUSED 127.0.0.1:8080" rather than fetch's bare "fetch failed". */
export function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return [...new Set(cause.errors.map((e: unknown) => describeNetworkError(e)))].join("; ");
  }
  if (cause instanceof Error) return describeNetworkError(cause);
  const code = "code" in err && typeof err.code === "string" ? err.code : null;
  if (err.message !== "") return err.message;
  return code ?? err.name;
}
