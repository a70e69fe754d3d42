// The load's REST client: every change carries an Idempotency-Key; a connection error, a timeout
// or a 5xx is retried with the SAME key on the other API with backoff, so a killed API or a Redis
// or Postgres outage loses nothing. What each attempt met is counted for the report.
import { sleep } from "./services.js";

export interface Answer {
  status: number;
  /** Parsed JSON body, or null. */
  body: Record<string, unknown> | null;
  headers: Headers;
  api: number;
  attempts: number;
}

export type Submitted =
  | { kind: "accepted"; jobId: string; jobType: string; body: Record<string, unknown> }
  | { kind: "ok"; status: number; body: Record<string, unknown> | null }
  | { kind: "refused"; status: number; code: string; detail: string }
  | { kind: "gave-up"; reason: string };

export interface AcceptedJob {
  jobId: string;
  jobType: string;
  op: string;
  key: string;
  at: number;
  via: "rest" | "cli";
}

/** 503 answers that are the legitimate answer of the moment, not an outage of the API. */
const FINAL_5XX = new Set(["HOST_OFFLINE"]);

export class ClientStats {
  requests = 0;
  attempts = 0;
  /** Why attempts were retried: "ECONNREFUSED", "timeout", "500 INTERNAL", "503 QUEUE_UNAVAILABLE"… */
  readonly retried = new Map<string, number>();
  /** Final answers per operation: "accepted", "refused <CODE>", "gave up". */
  readonly outcomes = new Map<string, Map<string, number>>();
  readonly gaveUp: { op: string; reason: string; at: number }[] = [];
  slowAnswers = 0;
  maxLatencyMs = 0;

  count(map: Map<string, number>, key: string, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }

  outcome(op: string, what: string): void {
    let m = this.outcomes.get(op);
    if (!m) this.outcomes.set(op, (m = new Map()));
    this.count(m, what);
  }
}

function describeFetchError(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string; message?: string }; message?: string };
  if (e.name === "TimeoutError" || e.name === "AbortError") return "timeout";
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

export class ApiClient {
  private turn = 0;
  private keys = 0;
  readonly accepted = new Map<string, AcceptedJob>();

  constructor(
    readonly urls: string[],
    readonly stats: ClientStats,
    private readonly runId: string,
    private readonly t0: number,
    private readonly options: { attemptTimeoutMs: number; retryForMs: number; slowMs: number } = { attemptTimeoutMs: 12_000, retryForMs: 120_000, slowMs: 5000 },
  ) {}

  newKey(op: string): string {
    this.keys += 1;
    return `${this.runId}-${op}-${this.keys}`;
  }

  /** The API to use first: round robin, so both serve the load. */
  pickApi(): number {
    this.turn = (this.turn + 1) % this.urls.length;
    return this.turn;
  }

  /**
   * Sends a request, retrying connection errors, timeouts and 5xx answers (but HOST_OFFLINE) on
   * the other API with backoff until `retryForMs` passes; returns the final answer or null.
   */
  async request(
    method: string,
    path: string,
    opts: { body?: unknown; key?: string; first?: number; headers?: Record<string, string>; raw?: Buffer } = {},
  ): Promise<Answer | { failed: string }> {
    this.stats.requests += 1;
    const deadline = Date.now() + this.options.retryForMs;
    let api = opts.first ?? this.pickApi();
    let lastFailure = "";
    for (let attempt = 1; ; attempt++) {
      this.stats.attempts += 1;
      const started = Date.now();
      try {
        const headers: Record<string, string> = { ...opts.headers };
        if (opts.key) headers["idempotency-key"] = opts.key;
        let body: string | Buffer | undefined;
        if (opts.raw) {
          body = opts.raw;
          headers["content-type"] ??= "application/octet-stream";
        } else if (opts.body !== undefined) {
          body = JSON.stringify(opts.body);
          headers["content-type"] = "application/json";
        }
        const res = await fetch(`${this.urls[api]}${path}`, { method, headers, body, signal: AbortSignal.timeout(this.options.attemptTimeoutMs) });
        const text = await res.text();
        this.latency(Date.now() - started);
        let parsed: Record<string, unknown> | null = null;
        try {
          parsed = text === "" ? null : (JSON.parse(text) as Record<string, unknown>);
        } catch {
          parsed = { raw: text };
        }
        const code = typeof parsed?.["code"] === "string" ? parsed["code"] : "";
        if (res.status < 500 || FINAL_5XX.has(code)) return { status: res.status, body: parsed, headers: res.headers, api, attempts: attempt };
        lastFailure = `${res.status} ${code || "(no code)"}`;
      } catch (err) {
        this.latency(Date.now() - started);
        lastFailure = describeFetchError(err);
      }
      this.stats.count(this.stats.retried, lastFailure);
      if (Date.now() > deadline) return { failed: `${method} ${path}: gave up after ${attempt} attempts; last: ${lastFailure}` };
      await sleep(Math.min(3000, 200 * 2 ** Math.min(attempt - 1, 4)) * (0.75 + Math.random() * 0.5));
      api = (api + 1) % this.urls.length;
    }
  }

  private latency(ms: number): void {
    if (ms > this.options.slowMs) this.stats.slowAnswers += 1;
    this.stats.maxLatencyMs = Math.max(this.stats.maxLatencyMs, ms);
  }

  /** A change: POST/PUT/DELETE with a fresh Idempotency-Key; a 202 records the job as accepted. */
  async submit(op: string, method: string, path: string, body?: unknown, opts: { key?: string; first?: number } = {}): Promise<Submitted> {
    const key = opts.key ?? this.newKey(op);
    const answer = await this.request(method, path, { body, key, ...(opts.first !== undefined ? { first: opts.first } : {}) });
    return this.settle(op, key, answer);
  }

  settle(op: string, key: string, answer: Answer | { failed: string }): Submitted {
    if ("failed" in answer) {
      this.stats.outcome(op, "gave up");
      this.stats.gaveUp.push({ op, reason: answer.failed, at: Date.now() - this.t0 });
      return { kind: "gave-up", reason: answer.failed };
    }
    const job = answer.body?.["job"] as { id?: string; type?: string } | undefined;
    if (answer.status === 202 && job?.id) {
      this.record({ jobId: job.id, jobType: job.type ?? "?", op, key, via: "rest" });
      this.stats.outcome(op, "accepted");
      return { kind: "accepted", jobId: job.id, jobType: job.type ?? "?", body: answer.body ?? {} };
    }
    if (answer.status >= 200 && answer.status < 300) {
      this.stats.outcome(op, `ok ${answer.status}`);
      return { kind: "ok", status: answer.status, body: answer.body };
    }
    const code = typeof answer.body?.["code"] === "string" ? answer.body["code"] : `HTTP ${answer.status}`;
    this.stats.outcome(op, `refused ${code}`);
    return { kind: "refused", status: answer.status, code, detail: typeof answer.body?.["detail"] === "string" ? answer.body["detail"] : JSON.stringify(answer.body) };
  }

  /** Records an accepted job (its `at` is set here, relative to the run's start). */
  record(job: Omit<AcceptedJob, "at">): void {
    if (!this.accepted.has(job.jobId)) this.accepted.set(job.jobId, { ...job, at: Date.now() - this.t0 });
  }
}
