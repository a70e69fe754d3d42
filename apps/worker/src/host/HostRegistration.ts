import os from "node:os";
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import { parseSize, type Accelerator, type HostNetworkInfo } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";

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

/** Registers the host (upsert) and keeps its heartbeat fresh; a stale heartbeat means offline. */
export class HostRegistration {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: PrismaClient,
    private readonly facts: HostFacts,
    private readonly log: Logger,
  ) {}

  async register(): Promise<void> {
    const now = new Date();
    const data = {
      name: this.facts.name,
      cpus: this.facts.cpus,
      memoryBytes: BigInt(this.facts.memoryBytes),
      diskBytes: BigInt(this.facts.diskBytes),
      accelerator: this.facts.accelerator,
      qemuVersion: this.facts.qemuVersion,
      address: this.facts.network.address,
      network: this.facts.network,
      startedAt: now,
      lastHeartbeatAt: now,
    };
    await this.db.host.upsert({ where: { id: this.facts.id }, create: { id: this.facts.id, ...data }, update: data });
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.db.host
        .update({ where: { id: this.facts.id }, data: { lastHeartbeatAt: new Date() } })
        .catch((err: unknown) => this.log.warn({ err }, "heartbeat failed"));
    }, intervalMs);
  }

  /** Publishes new network facts (listening ports change while the host runs). */
  async updateNetwork(network: HostNetworkInfo): Promise<void> {
    if (JSON.stringify(network) === JSON.stringify(this.facts.network)) return;
    this.facts.network = network;
    await this.db.host.update({ where: { id: this.facts.id }, data: { address: network.address, network } });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
