import { IaasError, type HostState } from "@iaas/contracts";
import type { Db } from "@iaas/db";

/** When a host counts as offline and as lost: seconds without a heartbeat (database clock). */
export interface HostThresholds {
  /** IAAS_HOST_OFFLINE_SECONDS: nothing new is placed on the host, actions on its VMs are refused. */
  offlineAfterSeconds: number;
  /** IAAS_HOST_LOST_SECONDS: its VMs show as `unknown`, and may be force-deleted or evacuated. */
  lostAfterSeconds: number;
}

export const DEFAULT_LOST_AFTER_SECONDS = 300;

/**
 * Seconds since each host's last heartbeat, computed by Postgres from its own clock (the
 * heartbeat is stamped with it too), so no process's clock decides whether a host is alive.
 * The columns are `timestamp without time zone` holding UTC.
 */
export async function hostAges(db: Db, ids?: readonly string[]): Promise<Map<string, number>> {
  const rows =
    ids === undefined
      ? await db.$queryRaw<{ id: string; age: number }[]>`
          SELECT "id", EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - "lastHeartbeatAt")::float8 AS "age" FROM "Host"`
      : await db.$queryRaw<{ id: string; age: number }[]>`
          SELECT "id", EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - "lastHeartbeatAt")::float8 AS "age" FROM "Host" WHERE "id" = ANY(${[...ids]}::text[])`;
  return new Map(rows.map((r) => [r.id, Math.max(0, Number(r.age))]));
}

/** One host's heartbeat age (seconds), or null for an unknown host. */
export async function hostAge(db: Db, id: string): Promise<number | null> {
  return (await hostAges(db, [id])).get(id) ?? null;
}

export function hostStateOf(ageSeconds: number, thresholds: HostThresholds): HostState {
  if (ageSeconds <= thresholds.offlineAfterSeconds) return "online";
  return ageSeconds > thresholds.lostAfterSeconds ? "lost" : "offline";
}

/** The state of every host, by id. */
export async function hostStates(db: Db, thresholds: HostThresholds): Promise<Map<string, HostState>> {
  const ages = await hostAges(db);
  return new Map([...ages].map(([id, age]) => [id, hostStateOf(age, thresholds)]));
}

/** "12 s", "5 min", "3 h": how long a host has been silent, for messages. */
export function formatSilence(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/**
 * Refuses to act on a VM whose host is not online: HOST_OFFLINE (it may come back: start its
 * worker) or HOST_LOST (past IAAS_HOST_LOST_SECONDS: force-delete or evacuate the VM). `verb`
 * says what was asked ("start", "add a NIC to").
 */
export async function requireVmHostOnline(db: Db, vm: { name: string; hostId: string }, verb: string, thresholds: HostThresholds): Promise<void> {
  const age = await hostAge(db, vm.hostId);
  const state = age === null ? "lost" : hostStateOf(age, thresholds);
  if (state === "online") return;
  const silent = age === null ? "it is not registered" : `no heartbeat for ${formatSilence(age)}`;
  if (state === "lost") {
    throw new IaasError("HOST_LOST", `cannot ${verb} VM '${vm.name}': its host '${vm.hostId}' is lost (${silent})`, {
      hint: `bring the worker of host '${vm.hostId}' back (IAAS_HOST_ID=${vm.hostId}); or remove the VM's records with \`iaas vm delete ${vm.name} --force\`, or recreate it elsewhere from its backup with \`iaas host evacuate ${vm.hostId}\``,
    });
  }
  throw new IaasError("HOST_OFFLINE", `cannot ${verb} VM '${vm.name}': its host '${vm.hostId}' is offline (${silent})`, {
    hint: `start the worker of host '${vm.hostId}' (IAAS_HOST_ID=${vm.hostId}), then retry; \`iaas host list\` shows host state`,
  });
}
