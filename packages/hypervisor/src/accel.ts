import { constants as fsConstants } from "node:fs";
import { open } from "node:fs/promises";
import { IaasError, type AccelSetting, type Accelerator } from "@iaas/contracts";
import { run } from "./run.js";

export interface KvmProbe {
  usable: boolean;
  /** Why /dev/kvm cannot be used, when it cannot. */
  reason: string | null;
}

/** Whether the KVM device can be opened read-write (what QEMU needs). */
export async function probeKvm(devicePath = "/dev/kvm"): Promise<KvmProbe> {
  try {
    const fh = await open(devicePath, fsConstants.O_RDWR);
    await fh.close();
    return { usable: true, reason: null };
  } catch (err) {
    const code = err instanceof Error && "code" in err ? String(err.code) : "";
    return { usable: false, reason: kvmUnusableReason(devicePath, code, err instanceof Error ? err.message : String(err)) };
  }
}

/** Why the KVM device could not be opened, from the error code, in words that say what to do. */
export function kvmUnusableReason(devicePath: string, code: string, message: string): string {
  switch (code) {
    case "ENOENT":
      return `${devicePath} does not exist (no KVM kernel module, or virtualization is off in the firmware or the parent hypervisor)`;
    case "EACCES":
    case "EPERM":
      return `${devicePath} cannot be opened read-write by this user (add the user to the 'kvm' group)`;
    default:
      return `${devicePath} cannot be opened: ${message}`;
  }
}

/**
 * The accelerator to launch VMs with: 'auto' → 'kvm' when /dev/kvm opens read-write, else 'tcg';
 * 'kvm' → 'kvm', or an error saying why KVM is unusable; 'tcg' → 'tcg'.
 */
export async function detectAccelerator(setting: AccelSetting, opts: { devicePath?: string } = {}): Promise<Accelerator> {
  switch (setting) {
    case "tcg":
      return "tcg";
    case "auto":
      return (await probeKvm(opts.devicePath)).usable ? "kvm" : "tcg";
    case "kvm": {
      const probe = await probeKvm(opts.devicePath);
      if (probe.usable) return "kvm";
      throw new IaasError("QEMU_FAILED", `accelerator 'kvm' was asked for but KVM is unusable: ${probe.reason ?? "unknown reason"}`, {
        retryable: false,
        hint: "fix access to /dev/kvm, or set the accelerator to 'auto' or 'tcg' (software emulation, much slower)",
      });
    }
    default:
      throw new IaasError("QEMU_FAILED", `unknown accelerator setting '${String(setting)}'`, {
        retryable: false,
        hint: "use 'auto', 'kvm' or 'tcg'",
      });
  }
}

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  /** The version as printed, e.g. "7.2.22". */
  version: string;
  /** Distribution package tag, e.g. "Debian 1:7.2+dfsg-7+deb12u18+b3", or null. */
  package: string | null;
}

/** Parses `qemu-system-x86_64 --version` (or `qemu-img --version`) output. Pure. */
export function parseQemuVersion(text: string): QemuVersion {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?(?:\s*\(([^)]*)\))?/.exec(text);
  if (m === null) throw new IaasError("QEMU_FAILED", `cannot find a QEMU version in: ${text.slice(0, 200)}`);
  const [, major = "0", minor = "0", micro = "0", pkg] = m;
  return {
    major: Number(major),
    minor: Number(minor),
    micro: Number(micro),
    version: `${major}.${minor}.${micro}`,
    package: pkg === undefined || pkg.trim() === "" ? null : pkg.trim(),
  };
}

/** Runs `BINARY --version` and parses it. */
export async function qemuVersion(binary = "qemu-system-x86_64", opts: { timeoutMs?: number } = {}): Promise<QemuVersion> {
  let stdout: string;
  try {
    ({ stdout } = await run([binary, "--version"], { timeoutMs: opts.timeoutMs ?? 10_000 }));
  } catch (err) {
    throw new IaasError("QEMU_FAILED", `cannot run ${binary} --version: ${err instanceof Error ? err.message : String(err)}`, {
      retryable: false,
      hint: "install QEMU (Debian: qemu-system-x86) or set the QEMU binary path",
      cause: err,
    });
  }
  return parseQemuVersion(stdout);
}
