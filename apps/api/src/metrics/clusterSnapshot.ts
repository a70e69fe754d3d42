import type { PrismaClient } from "@iaas/db";

/** What Postgres says about each host at one moment, for the scrape-time gauges. */
export interface HostSnapshot {
  id: string;
  capacity: { cpus: number; memoryBytes: number; diskBytes: number };
  /** Every VM placed on the host counts, running or not (as the scheduler counts). */
  allocated: { cpus: number; memoryBytes: number; diskBytes: number };
  heartbeatAgeSeconds: number;
  drained: boolean;
}

export interface ClusterSnapshot {
  hosts: HostSnapshot[];
  /** VMs per host and state. */
  vms: { host: string; state: string; count: number }[];
  /** Jobs not yet final per host and state (`queued`: the host's queue depth; `running`). */
  jobs: { host: string; state: string; count: number }[];
}

interface Row {
  kind: "host" | "vm" | "job";
  host: string;
  label: string;
  a: number;
  b: number;
  c: number;
  d: number;
}

/**
 * One statement for every database-derived gauge: hosts with their capacity and heartbeat age,
 * VMs grouped by host and state with their summed size, and unfinished jobs grouped by host and
 * state (the (state, createdAt) index finds them). Its cost grows with hosts × states, not with
 * requests or jobs done.
 */
export async function loadClusterSnapshot(db: PrismaClient): Promise<ClusterSnapshot> {
  const rows = await db.$queryRaw<Row[]>`
    SELECT 'host' AS kind, h."id" AS host, CASE WHEN h."drained" THEN 'drained' ELSE '' END AS label,
           h."cpus"::float8 AS a, h."memoryBytes"::float8 AS b, h."diskBytes"::float8 AS c,
           EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - h."lastHeartbeatAt")::float8 AS d
      FROM "Host" h
    UNION ALL
    SELECT 'vm', v."hostId", v."state"::text, count(*)::float8, sum(v."cpus")::float8, sum(v."memoryBytes")::float8, sum(v."diskBytes")::float8
      FROM "Vm" v GROUP BY v."hostId", v."state"
    UNION ALL
    SELECT 'job', COALESCE(j."hostId", ''), j."state"::text, count(*)::float8, 0, 0, 0
      FROM "Job" j WHERE j."state" IN ('queued', 'running') GROUP BY j."hostId", j."state"`;
  const hosts = new Map<string, HostSnapshot>();
  const snapshot: ClusterSnapshot = { hosts: [], vms: [], jobs: [] };
  for (const row of rows) {
    if (row.kind !== "host") continue;
    const host: HostSnapshot = {
      id: row.host,
      capacity: { cpus: row.a, memoryBytes: row.b, diskBytes: row.c },
      allocated: { cpus: 0, memoryBytes: 0, diskBytes: 0 },
      heartbeatAgeSeconds: Math.max(0, row.d),
      drained: row.label === "drained",
    };
    hosts.set(host.id, host);
    snapshot.hosts.push(host);
  }
  for (const row of rows) {
    if (row.kind === "vm") {
      snapshot.vms.push({ host: row.host, state: row.label, count: row.a });
      const host = hosts.get(row.host);
      if (host) {
        host.allocated.cpus += row.b;
        host.allocated.memoryBytes += row.c;
        host.allocated.diskBytes += row.d;
      }
    } else if (row.kind === "job") {
      snapshot.jobs.push({ host: row.host, state: row.label, count: row.a });
    }
  }
  return snapshot;
}
