import pg from "pg";

/** The channel the `JobEvent_notify` trigger (migration 20261202010000) notifies at each commit. */
export const JOB_EVENTS_CHANNEL = "iaas_job_events";

/** One committed job event, as the trigger announces it: the row is read by its job id and seq. */
export interface JobEventNotice {
  jobId: string;
  seq: number;
  /** The event moved the job to a terminal state. */
  final: boolean;
}

/** Parses a notification payload `<jobId>:<seq>[:final]`; null for anything else. */
export function parseJobEventNotice(payload: string): JobEventNotice | null {
  const match = /^([0-9a-f-]{36}):(\d+)(:final)?$/.exec(payload);
  if (!match?.[1] || !match[2]) return null;
  return { jobId: match[1], seq: Number(match[2]), final: match[3] !== undefined };
}

export interface JobEventListenerOptions {
  /** Each committed event, in commit order. */
  onNotice: (notice: JobEventNotice) => void;
  /**
   * The connection was (re)established and LISTENs again: notifications sent while it was away
   * are lost, so every watcher should read again. Also called after the first connection.
   */
  onListening: () => void;
  /** Connection trouble, for a log line; the listener reconnects by itself. */
  onError?: (err: Error) => void;
  /** Pauses before reconnecting, doubling from the first to the last (default 100 ms … 5 s). */
  reconnectDelaysMs?: { first: number; max: number };
}

/**
 * One dedicated Postgres connection that LISTENs on {@link JOB_EVENTS_CHANNEL}. It reconnects
 * with backoff whenever the connection ends (Postgres restarted, the backend terminated, the
 * network cut), LISTENs again and reports it through `onListening`.
 */
export class JobEventListener {
  private client: pg.Client | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private readonly first: number;
  private readonly max: number;

  constructor(
    private readonly databaseUrl: string,
    private readonly options: JobEventListenerOptions,
  ) {
    this.first = options.reconnectDelaysMs?.first ?? 100;
    this.max = options.reconnectDelaysMs?.max ?? 5000;
    this.delayMs = this.first;
  }

  /** Connects in the background; resolves after the first attempt, whether it worked or not. */
  start(): Promise<void> {
    return this.connect();
  }

  /** Whether the connection is up and LISTENing. */
  get listening(): boolean {
    return this.client !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    // Nothing here reads timestamps, but every raw connection of the project speaks UTC.
    const client = new pg.Client({
      connectionString: this.databaseUrl,
      application_name: "iaas-job-events",
      options: "-c TimeZone=UTC",
      // A server that does not answer must not hold up the API's start: retried in the background.
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    let ended = false;
    const lost = (err?: Error): void => {
      if (ended) return;
      ended = true;
      if (err) this.options.onError?.(err);
      if (this.client === client) this.client = null;
      client.removeAllListeners("notification");
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on("error", (err) => lost(err));
    client.on("end", () => lost());
    client.on("notification", (message) => {
      if (message.channel !== JOB_EVENTS_CHANNEL || message.payload === undefined) return;
      const notice = parseJobEventNotice(message.payload);
      if (notice !== null) this.options.onNotice(notice);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
    } catch (err) {
      lost(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (ended) return;
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.delayMs = this.first;
    this.options.onListening();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer !== null) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.max, this.delayMs * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
    this.timer.unref();
  }
}
