import type { Logger } from "pino";
import { isTerminalJobState } from "@iaas/contracts";
import { JobEventListener, type JobEvent, type JobEventNotice, type PrismaClient } from "@iaas/db";

/** The safety-net poll while the LISTEN connection is down (and without one): at most this long. */
const POLL_WHILE_DEAF_MS = 1000;

/** What happened to a watched job since the watcher last asked (merged when several things did). */
export interface JobWake {
  /** The highest event sequence number announced (0 when only `resync`). */
  seq: number;
  /** One of the events moved the job to a terminal state. */
  final: boolean;
  /** Notifications may have been missed (the LISTEN connection came back) or the job is gone: read again. */
  resync: boolean;
}

/** One watcher of one job (an event stream or a long-poll); close it when done. */
export class JobSubscription {
  private pending: JobWake | null = null;
  private wakeUp: (() => void) | null = null;
  private closed = false;
  /** The last event sequence number the watcher has (the safety poll compares it with the job's). */
  lastSeq = 0;

  constructor(
    readonly jobId: string,
    private readonly onClose: (sub: JobSubscription) => void,
  ) {}

  /** Called by the hub: remembers the wake and resumes a waiting `next`. */
  deliver(wake: JobWake): void {
    if (this.closed) return;
    const p = this.pending;
    this.pending = p === null ? { ...wake } : { seq: Math.max(p.seq, wake.seq), final: p.final || wake.final, resync: p.resync || wake.resync };
    const wakeUp = this.wakeUp;
    this.wakeUp = null;
    wakeUp?.();
  }

  /** What happened since the last call; null when `ms` passed or `signal` aborted first. */
  async next(ms: number, signal: AbortSignal): Promise<JobWake | null> {
    if (this.pending === null && !signal.aborted && ms > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          if (this.wakeUp === done) this.wakeUp = null;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        this.wakeUp = done;
      });
    }
    const wake = this.pending;
    this.pending = null;
    return wake;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wakeUp?.();
    this.onClose(this);
  }
}

export interface JobEventHubOptions {
  /**
   * IAAS_EVENT_SAFETY_POLL_MS: how often one query checks every watched job for events the
   * notifications missed. Only a safety net: events arrive pushed, within milliseconds.
   */
  safetyPollMs: number;
  log?: Logger;
}

/**
 * Fans job events out to the event streams and long-polls of this API process. One LISTEN
 * connection (JobEventListener) hears every committed JobEvent row (a trigger notifies at
 * commit); the hub wakes the watchers of that job, which read the new rows by id. No watcher
 * polls Postgres: a single query per `safetyPollMs` for all watched jobs catches a lost
 * notification, and a LISTEN connection that comes back makes every watcher read again.
 */
export class JobEventHub {
  private readonly subscriptions = new Map<string, Set<JobSubscription>>();
  private listener: JobEventListener | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;
  /** Event reads in flight, by job, position and size: watchers at the same point share one query. */
  private readonly reads = new Map<string, Promise<JobEvent[]>>();
  /** Counters for tests and logs: notifications heard, safety polls run, reconnections. */
  readonly stats = { notices: 0, polls: 0, resyncs: 0 };

  constructor(
    private readonly db: PrismaClient,
    private readonly options: JobEventHubOptions,
  ) {}

  /** Opens the LISTEN connection; resolves after the first attempt (it keeps retrying in the background). */
  async listen(databaseUrl: string): Promise<void> {
    if (this.listener !== null) return;
    let first = true;
    this.listener = new JobEventListener(databaseUrl, {
      onNotice: (notice) => this.notice(notice),
      onListening: () => {
        if (first) {
          first = false;
          this.options.log?.debug("listening for job events");
        } else {
          this.stats.resyncs++;
          this.options.log?.info("job event connection is back; every open stream and wait reads again");
        }
        // Whatever was committed while the connection was away was not announced.
        this.wakeAll({ seq: 0, final: false, resync: true });
      },
      onError: (err) => this.options.log?.warn({ err: err.message }, "job event connection lost; reconnecting"),
    });
    await this.listener.start();
  }

  /** Whether job events are being pushed right now (the LISTEN connection is up). */
  get listening(): boolean {
    return this.listener?.listening === true;
  }

  /**
   * Watches `jobId` (a lower-case UUID). Subscribe before reading the job: an event committed
   * after the read is then announced to the subscription. Set `lastSeq` as events are read.
   */
  subscribe(jobId: string): JobSubscription {
    const sub = new JobSubscription(jobId, (s) => this.unsubscribe(s));
    let set = this.subscriptions.get(jobId);
    if (set === undefined) {
      set = new Set();
      this.subscriptions.set(jobId, set);
    }
    set.add(sub);
    this.schedulePoll();
    return sub;
  }

  /**
   * The events of `jobId` after sequence number `after` (at most `limit`, in order). Streams of
   * one job wake together at the same position: they share one query instead of one each.
   */
  eventsAfter(jobId: string, after: number, limit: number): Promise<JobEvent[]> {
    const key = `${jobId}:${after}:${limit}`;
    let read = this.reads.get(key);
    if (read === undefined) {
      read = this.db.jobEvent.findMany({ where: { jobId, seq: { gt: after } }, orderBy: { seq: "asc" }, take: limit }).finally(() => this.reads.delete(key));
      this.reads.set(key, read);
    }
    return read;
  }

  /** Number of open watchers (streams and waits). */
  get watchers(): number {
    let n = 0;
    for (const set of this.subscriptions.values()) n += set.size;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.wakeAll({ seq: 0, final: false, resync: true });
    await this.listener?.close();
  }

  private notice(notice: JobEventNotice): void {
    this.stats.notices++;
    const set = this.subscriptions.get(notice.jobId);
    if (set === undefined) return;
    for (const sub of set) sub.deliver({ seq: notice.seq, final: notice.final, resync: false });
  }

  private wakeAll(wake: JobWake): void {
    for (const set of this.subscriptions.values()) for (const sub of set) sub.deliver(wake);
  }

  private unsubscribe(sub: JobSubscription): void {
    const set = this.subscriptions.get(sub.jobId);
    if (set === undefined) return;
    set.delete(sub);
    if (set.size === 0) this.subscriptions.delete(sub.jobId);
    if (this.subscriptions.size === 0 && this.pollTimer !== null) {
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  /** The safety poll runs only while someone watches. */
  private schedulePoll(): void {
    if (this.closed || this.pollTimer !== null || this.subscriptions.size === 0) return;
    const interval = this.listening ? this.options.safetyPollMs : Math.min(this.options.safetyPollMs, POLL_WHILE_DEAF_MS);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.poll().finally(() => this.schedulePoll());
    }, interval);
    this.pollTimer.unref();
  }

  /** One query for every watched job: wakes the watchers behind the job's last event sequence number. */
  private async poll(): Promise<void> {
    if (this.polling || this.subscriptions.size === 0) return;
    this.polling = true;
    this.stats.polls++;
    try {
      const ids = [...this.subscriptions.keys()];
      const rows = await this.db.job.findMany({ where: { id: { in: ids } }, select: { id: true, eventSeq: true, state: true } });
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const id of ids) {
        const row = byId.get(id);
        for (const sub of this.subscriptions.get(id) ?? []) {
          if (row === undefined) sub.deliver({ seq: 0, final: false, resync: true });
          else if (row.eventSeq > sub.lastSeq) sub.deliver({ seq: row.eventSeq, final: isTerminalJobState(row.state), resync: false });
        }
      }
    } catch (err) {
      this.options.log?.debug({ err: err instanceof Error ? err.message : String(err) }, "job event safety poll failed");
    } finally {
      this.polling = false;
    }
  }
}
