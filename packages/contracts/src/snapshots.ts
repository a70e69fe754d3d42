import { z } from "zod";
import { VmState } from "./states.js";

/** Snapshot names are unique per VM; they become qcow2 snapshot tags, so a safe character set. */
export const SnapshotName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a snapshot name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit");

/** `disk`: the disk only; `memory`: disk plus RAM and device state (returns to a running instant). */
export const SnapshotKind = z.enum(["disk", "memory"]);
export type SnapshotKind = z.infer<typeof SnapshotKind>;

export const SnapshotState = z.enum(["creating", "ready", "deleting"]);
export type SnapshotState = z.infer<typeof SnapshotState>;

export const SnapshotCreateRequest = z.object({
  name: SnapshotName,
  /** Save RAM and device state too (running VMs only). */
  memory: z.boolean().default(false),
  description: z.string().max(1000).optional(),
});
export type SnapshotCreateRequest = z.infer<typeof SnapshotCreateRequest>;

export const SnapshotRestoreRequest = z.object({
  /** Disk-only snapshot of a running VM: stop it, restore, start it again. */
  restart: z.boolean().default(false),
});
export type SnapshotRestoreRequest = z.infer<typeof SnapshotRestoreRequest>;

export const Snapshot = z.object({
  id: z.string(),
  vmId: z.string(),
  name: z.string(),
  kind: SnapshotKind,
  state: SnapshotState,
  description: z.string().nullable(),
  /** The VM's state when the snapshot was taken. */
  vmState: VmState,
  /** Size of the saved VM state (memory snapshots), as `qemu-img snapshot -l` reports it. */
  sizeBytes: z.number().nullable(),
  createdAt: z.string(),
});
export type Snapshot = z.infer<typeof Snapshot>;

/** What a memory snapshot can only be loaded into: the same machine and devices. */
export const SnapshotMachine = z.object({
  machine: z.string(),
  cpus: z.number().int(),
  memoryBytes: z.number(),
  nics: z.array(z.string()),
});
export type SnapshotMachine = z.infer<typeof SnapshotMachine>;

/** The machine a VM is now, as a memory snapshot records it (machine type, CPUs, memory, NIC MACs). */
export function snapshotMachineOf(vm: { cpus: number; memoryBytes: number | bigint }, nicMacs: string[]): SnapshotMachine {
  return { machine: "q35", cpus: vm.cpus, memoryBytes: Number(vm.memoryBytes), nics: nicMacs };
}

/** Whether a memory snapshot's recorded machine is the VM's machine now (its state can be loaded). */
export function sameSnapshotMachine(recorded: unknown, now: SnapshotMachine): boolean {
  const parsed = SnapshotMachine.safeParse(recorded);
  return parsed.success && JSON.stringify(parsed.data) === JSON.stringify(now);
}
