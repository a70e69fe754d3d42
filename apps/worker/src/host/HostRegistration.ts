import { randomUUID } from "node:crypto";
import os from "node:os";
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import { parseSize, type Accelerator, type HostNetworkInfo } from "@iaas/contracts";
import type { Db, PrismaClient } from "@iaas/db";

export interface HostFacts {
  id: string;
  name: string;
  accelerator: Accelerator;
  qemuVersion: string | null;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  network: HostNetworkInfo;
}

/** What this host offers: vCPUs (cores × allocation ratio), memory and the data directory's disk. */
export async function measureHost(opts: {
  dataDir: string;
  cpuRatio: number;
  cpus?: number | undefined;
  memory?: string | undefined;
  disk?: string | undefined;
}): Promise<{ cpus: number; memoryBytes: number; diskBytes: number }> {
  const fs = await statfs(opts.dataDir);
  return {
    cpus: opts.cpus ?? Math.max(1, Math.floor(os.availableParallelism() * opts.cpuRatio)),
    memoryBytes: opts.memory ? parseSize(opts.memory, "M") : os.totalmem(),
    diskBytes: opts.disk ? parseSize(opts.disk, "G") : fs.blocks * fs.bsize,
  };
}

/** Refused registration: another live worker process serves this host id. */
export class HostTakenError extends Error {
  constructor(
    readonly hostId: string,
    readonly otherInstance: string,
    readonly heartbeatAgeSeconds: number,
  ) {
    super(
      `host ${hostId} is already served by another worker (instance ${otherInstance}, heartbeat ${Math.round(heartbeatAgeSeconds)} s ago); stop it, or give this worker another IAAS_HOST_ID`,
    );
    this.name = "HostTakenError";
  }
}

/** Who took the host over from a fenced worker (null: its row is gone). */
export interface FencedBy {
  hostId: string;
  instanceId: string | null;
}

export interface RegistrationOptions {
  /** This worker process (random per process): the host's `instanceId` while it serves the host. */
  instanceId: string;
  /** IAAS_HOST_OFFLINE_SECONDS: another instance whose heartbeat is younger than this is alive. */
  offlineAfterSeconds: number;
  /**
   * Called once when a heartbeat finds the host served by another instance (this one was paused
   * or cut off past the threshold and another worker registered): this worker must stop.
   */
  onFenced: (by: FencedBy) => void;
}

/**
 * Registers the host and keeps its heartbeat fresh; a stale heartbeat means offline. Times come
 * from the database clock (`now()`), never this process's. One worker process serves a host id at
 * a time: registering refuses a host whose row names another instance with a live heartbeat, and
 * each heartbeat only lands while the row still names this instance, so a worker that another
 * took over from notices and is stopped (`onFenced`).
 */
export class HostRegistration {
  private timer: NodeJS.Timeout | undefined;
  private beating = false;
  private fenced = false;
  private readonly options: RegistrationOptions;

  /**
   * Without `options`: a new instance id, the default offline threshold (30 s), and a fenced
   * worker exits with status 1 after logging why; a worker passes its own (its instance id,
   * IAAS_HOST_OFFLINE_SECONDS, and a graceful stop).
   */
  constructor(
    private readonly db: PrismaClient,
    private readonly facts: HostFacts,
    private readonly log: Logger,
    options?: Partial<RegistrationOptions>,
  ) {
    this.options = {
      instanceId: options?.instanceId ?? randomUUID(),
      offlineAfterSeconds: options?.offlineAfterSeconds ?? 30,
      onFenced: options?.onFenced ?? (() => process.exit(1)),
    };
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  /**
   * Throws HostTakenError when another live instance serves the host; writes nothing. `register`
   * checks again (atomically); this lets a worker find out before it touches the host's networking.
   */
  async checkAvailable(): Promise<void> {
    const row = await this.current(this.db);
    this.refuseIfTaken(row);
  }

  /**
   * Like `checkAvailable`, but a worker restarted after a crash does not have to be refused: while
   * the other instance's heartbeat stands still it waits (at most the offline threshold) for it to
   * go stale, and refuses with HostTakenError as soon as that heartbeat moves (a live worker).
   */
  async waitUntilAvailable(pollMs = 1000): Promise<void> {
    let first: { instanceId: string | null; age: number; at: number } | null = null;
    for (;;) {
      const row = await this.current(this.db);
      try {
        this.refuseIfTaken(row);
        return;
      } catch (err) {
        if (!(err instanceof HostTakenError) || row === null) throw err;
        const now = Date.now();
        if (first === null || first.instanceId !== row.instanceId) {
          first = { instanceId: row.instanceId, age: row.age, at: now };
          this.log.warn(
            { otherInstance: row.instanceId, heartbeatAgeSeconds: Math.round(row.age) },
            `host ${this.facts.id} names another worker instance with a recent heartbeat; waiting up to ${this.options.offlineAfterSeconds} s for it to go stale (a crashed worker) before refusing`,
          );
        } else if (row.age + 0.5 < first.age + (now - first.at) / 1000) {
          throw err; // its heartbeat moved: that worker is alive
        }
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /**
   * Gives the host up on a clean stop: the row no longer names this instance, so the next worker
   * registers at once; the heartbeat stops, and the host shows offline once it is stale.
   */
  async release(): Promise<void> {
    this.stop();
    await this.db.host.updateMany({ where: { id: this.facts.id, instanceId: this.options.instanceId }, data: { instanceId: null } });
  }

  /** Upserts the host's row as served by this instance, with a heartbeat of now; throws HostTakenError. */
  async register(): Promise<void> {
    const id = this.facts.id;
    const data = {
      name: this.facts.name,
      cpus: this.facts.cpus,
      memoryBytes: BigInt(this.facts.memoryBytes),
      diskBytes: BigInt(this.facts.diskBytes),
      accelerator: this.facts.accelerator,
      qemuVersion: this.facts.qemuVersion,
      address: this.facts.network.address,
      network: this.facts.network,
      instanceId: this.options.instanceId,
    };
    await this.db.$transaction(async (tx) => {
      // Two workers registering the same new id at once take turns here (there is no row to lock yet).
      await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`iaas-host:${id}`}, 0))::text AS "locked"`;
      this.refuseIfTaken(await this.current(tx));
      await tx.host.upsert({ where: { id }, create: { id, ...data }, update: data });
      await tx.$executeRaw`UPDATE "Host" SET "startedAt" = now() AT TIME ZONE 'UTC', "lastHeartbeatAt" = now() AT TIME ZONE 'UTC' WHERE "id" = ${id}`;
    });
    this.fenced = false;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.beat(), intervalMs);
  }

  /**
   * One heartbeat, only while the row names this instance. Answers false when another instance
   * holds the host (then `onFenced` has been called and the heartbeat stopped); a database error
   * is logged and the next beat tries again.
   */
  async heartbeat(): Promise<boolean> {
    const id = this.facts.id;
    const updated = await this.db.$executeRaw`
      UPDATE "Host" SET "lastHeartbeatAt" = now() AT TIME ZONE 'UTC' WHERE "id" = ${id} AND "instanceId" = ${this.options.instanceId}`;
    if (updated > 0) return true;
    const row = await this.current(this.db);
    this.fenced = true;
    this.stop();
    this.log.error(
      { otherInstance: row?.instanceId ?? null },
      row
        ? `host ${id} is now served by another worker (instance ${row.instanceId ?? "unknown"}): this worker (instance ${this.options.instanceId}) was paused or cut off past IAAS_HOST_OFFLINE_SECONDS and must stop`
        : `host ${id} has no row any more: this worker (instance ${this.options.instanceId}) must stop`,
    );
    this.options.onFenced({ hostId: id, instanceId: row?.instanceId ?? null });
    return false;
  }

  /** Whether a heartbeat found the host taken over by another instance. */
  get isFenced(): boolean {
    return this.fenced;
  }

  private async beat(): Promise<void> {
    if (this.beating || this.fenced) return;
    this.beating = true;
    try {
      await this.heartbeat();
    } catch (err) {
      this.log.warn({ err }, "heartbeat failed");
    } finally {
      this.beating = false;
    }
  }

  /** The host's row as the database sees it now: its instance and heartbeat age (database clock). */
  private async current(db: Db): Promise<{ instanceId: string | null; age: number } | null> {
    const rows = await db.$queryRaw<{ instanceId: string | null; age: number }[]>`
      SELECT "instanceId", EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - "lastHeartbeatAt")::float8 AS "age" FROM "Host" WHERE "id" = ${this.facts.id}`;
    const row = rows[0];
    return row ? { instanceId: row.instanceId, age: Number(row.age) } : null;
  }

  private refuseIfTaken(row: { instanceId: string | null; age: number } | null): void {
    if (row === null || row.instanceId === null || row.instanceId === this.options.instanceId) return;
    if (row.age <= this.options.offlineAfterSeconds) throw new HostTakenError(this.facts.id, row.instanceId, Math.max(0, row.age));
  }

  /** Publishes new network facts (listening ports change while the host runs). */
  async updateNetwork(network: HostNetworkInfo): Promise<void> {
    if (JSON.stringify(network) === JSON.stringify(this.facts.network)) return;
    this.facts.network = network;
    await this.db.host.updateMany({ where: { id: this.facts.id, instanceId: this.options.instanceId }, data: { address: network.address, network } });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
