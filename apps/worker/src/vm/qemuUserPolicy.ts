import { stat } from "node:fs/promises";
import { configError, type Accelerator } from "@iaas/contracts";
import { resolveQemuUser, userCanOpen, userCanSearch, type QemuUser } from "@iaas/hypervisor";

/** The account a root worker runs QEMU as when IAAS_QEMU_USER is unset. */
export const DEFAULT_QEMU_USER = "nobody";

export interface QemuUserContext {
  /** Whether the worker runs as root (uid 0). */
  isRoot: boolean;
  accelerator: Accelerator;
  /** Default /dev/kvm. */
  kvmDevice?: string;
  /**
   * Directories QEMU opens files under (IAAS_DATA_DIR, IAAS_IMAGE_STORE): the user must be able
   * to reach them, or every VM start would fail with "Permission denied".
   */
  dirs?: Record<string, string>;
}

/**
 * Which account QEMU runs as, from IAAS_QEMU_USER: null keeps the worker's own user (a worker that
 * is not root, or IAAS_QEMU_USER=''); a root worker otherwise drops QEMU to the named account
 * (`nobody` by default). With KVM the account also gets /dev/kvm's group, and must then be able
 * to open it: QEMU would otherwise fall back to TCG without a word (`-accel kvm -accel tcg`).
 */
export async function qemuUserFromSetting(setting: string | undefined, ctx: QemuUserContext): Promise<QemuUser | null> {
  if (setting === "") return null;
  if (!ctx.isRoot) {
    if (setting === undefined) return null;
    throw configError([`IAAS_QEMU_USER: '${setting}' needs a worker running as root (QEMU runs as the worker's own user otherwise); unset it`]);
  }
  const name = setting ?? DEFAULT_QEMU_USER;
  let user: QemuUser;
  try {
    user = await resolveQemuUser(name);
  } catch (err) {
    throw configError([
      `IAAS_QEMU_USER: ${(err as Error).message}; name an existing unprivileged account (e.g. one made with \`useradd --system --no-create-home --shell /usr/sbin/nologin iaas-qemu\`), or set it to '' to run QEMU as root`,
    ]);
  }
  for (const [variable, dir] of Object.entries(ctx.dirs ?? {})) {
    if (!(await userCanSearch(user, dir))) {
      throw configError([
        `IAAS_QEMU_USER: QEMU would run as '${user.name}', which cannot reach ${variable} ${dir}; make it and the directories above it searchable (chmod o+x, e.g. not under /root), or set IAAS_QEMU_USER='' to run QEMU as root`,
      ]);
    }
  }
  if (ctx.accelerator === "kvm") {
    const device = ctx.kvmDevice ?? "/dev/kvm";
    const kvm = await stat(device).catch(() => null);
    // The device's group (kvm), never root's group 0.
    if (kvm !== null && kvm.gid !== 0 && kvm.gid !== user.gid && !user.groups.includes(kvm.gid)) user = { ...user, groups: [...user.groups, kvm.gid] };
    if (!(await userCanOpen(user, device))) {
      throw configError([
        `IAAS_QEMU_USER: QEMU would run as '${user.name}', which cannot open ${device} read-write; give ${device} to a group (e.g. kvm, mode 0660), or set IAAS_ACCEL=tcg, or IAAS_QEMU_USER='' to keep QEMU as root`,
      ]);
    }
  }
  return user;
}
