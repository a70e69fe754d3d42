import { createHash } from "node:crypto";
import { isAbsolute, normalize } from "node:path";
import { IaasError, type Accelerator } from "@iaas/contracts";

export type MachineType = "q35" | "pc";
export type DiskFormat = "qcow2" | "raw";

/** A host port forwarded into the guest by user-mode networking. */
export interface HostForward {
  protocol: "tcp" | "udp";
  /** Host address to listen on; default 127.0.0.1. */
  hostAddress?: string;
  hostPort: number;
  guestPort: number;
}

/** A NIC on QEMU's user-mode (slirp) network: the fallback where the host cannot make bridges. */
export interface UserNic {
  type: "user";
  /** Default: derived from the VM uuid and the NIC's index (see macFromUuid). */
  mac?: string;
  /** Isolate the guest from the host network (hostForwards still work). */
  restrict?: boolean;
  /** The guest-side subnet (CIDR), the host's address on it and the address DHCP hands out. */
  subnet?: string;
  hostAddress?: string;
  /** QEMU's built-in DNS address; must differ from hostAddress and dhcpStart (QEMU refuses otherwise). */
  dnsAddress?: string;
  dhcpStart?: string;
  hostForwards?: readonly HostForward[];
}

/** A NIC on a tap device the host created and enslaved to a bridge. */
export interface TapNic {
  type: "tap";
  ifname: string;
  mac: string;
  /** MTU advertised to the guest (virtio-net host_mtu). */
  mtu?: number;
}

export type VmNic = UserNic | TapNic;

export interface VmLaunchSpec {
  name: string;
  uuid: string;
  cpus: number;
  /** Guest memory; must be a whole number of MiB. */
  memoryBytes: number;
  accelerator: Accelerator;
  /** Default q35 (both q35 and pc boot a virtio-blk disk under TCG). */
  machine?: MachineType;
  /** Absolute path of the boot disk, attached as virtio-blk. */
  diskPath: string;
  /** Default qcow2. */
  diskFormat?: DiskFormat;
  nics: readonly VmNic[];
  pidfile: string;
  qmpSocket: string;
  serialLog: string;
  /** A second serial port as a unix socket (a root shell in the test guests; a login on others). */
  serialSocket?: string;
  /** A read-only raw disk with the cloud-init NoCloud seed (`cidata`). */
  seedPath?: string;
  /** Start from this internal snapshot's saved RAM and device state (`-loadvm`). */
  loadvm?: string;
  /** The guest's host name, also passed as fw_cfg `opt/iaas/hostname` for guests without cloud-init. */
  hostname?: string;
  /** Default `qemu-system-x86_64`. */
  binary?: string;
}

const MIB = 1024 * 1024;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * Thrown by buildQemuArgv for a spec that cannot be turned into a safe command line
 * (code QEMU_FAILED, not retryable: the same spec fails the same way).
 */
export class QemuSpecError extends IaasError {
  constructor(message: string) {
    super("QEMU_FAILED", `invalid VM launch spec: ${message}`, {
      retryable: false,
      hint: "the worker built a VM launch spec QEMU cannot take safely; check the VM's settings and the worker's directories",
    });
    this.name = "QemuSpecError";
  }
}

/**
 * Escapes a value for a QEMU `key=value,...` option string: commas are doubled. Values holding
 * characters that cannot be escaped (NUL, newline, carriage return) are refused.
 */
export function escapeOptionValue(value: string, what = "value"): string {
  assertSafeText(value, what);
  return value.replaceAll(",", ",,");
}

function assertSafeText(value: string, what: string): void {
  if (/[\0\n\r]/.test(value)) throw new QemuSpecError(`${what} must not contain NUL, newline or carriage-return characters`);
}

/** Checks that `path` is absolute and normalized (no `.`/`..` segments) and safe to pass to QEMU. */
export function assertAbsolutePath(path: string, what: string): string {
  assertSafeText(path, what);
  if (!isAbsolute(path)) throw new QemuSpecError(`${what} must be an absolute path (QEMU runs from '/'), got '${path}'`);
  if (normalize(path) !== path) throw new QemuSpecError(`${what} must be a normalized absolute path, got '${path}'`);
  return path;
}

/**
 * A MAC address derived from the VM uuid (and NIC index): QEMU's locally administered unicast
 * prefix 52:54:00 followed by three bytes of SHA-256(uuid/index), so it is stable across restarts.
 */
export function macFromUuid(uuid: string, index = 0): string {
  const h = createHash("sha256").update(`${uuid.toLowerCase()}/${index}`).digest();
  const tail = [h[0], h[1], h[2]].map((b) => (b ?? 0).toString(16).padStart(2, "0"));
  return ["52", "54", "00", ...tail].join(":");
}

/**
 * Splits a QEMU option string (`a=b,,c,d=e`) into key/value pairs, undoing comma doubling.
 * A part without '=' gets the key "" (QEMU's implied first key).
 */
export function parseOptionString(s: string): Array<[string, string]> {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ",") {
      if (s[i + 1] === ",") {
        cur += ",";
        i++;
      } else {
        parts.push(cur);
        cur = "";
      }
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  return parts.map((p) => {
    const eq = p.indexOf("=");
    return eq < 0 ? ["", p] : [p.slice(0, eq), p.slice(eq + 1)];
  });
}

function positiveInt(n: number, what: string, max: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new QemuSpecError(`${what} must be an integer from 1 to ${max}, got ${n}`);
  return n;
}

function port(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new QemuSpecError(`${what} must be a port number 1-65535, got ${n}`);
  return n;
}

const IPV4_RE = /^(\d{1,3})(\.\d{1,3}){3}$/;

function ipv4(value: string, what: string): string {
  if (!IPV4_RE.test(value)) throw new QemuSpecError(`${what} must be an IPv4 address, got '${value}'`);
  return value;
}

function tapNetdevArgs(nic: TapNic, index: number): string {
  if (!/^[a-z0-9-]{1,15}$/.test(nic.ifname)) throw new QemuSpecError(`nics[${index}].ifname must be 1-15 of [a-z0-9-], got '${nic.ifname}'`);
  return `tap,id=net${index},ifname=${nic.ifname},script=no,downscript=no`;
}

function netdevArgs(nic: UserNic, index: number): string {
  const opts = [`user`, `id=net${index}`];
  if (nic.restrict === true) opts.push("restrict=on");
  if (nic.subnet !== undefined) {
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(nic.subnet)) throw new QemuSpecError(`nics[${index}].subnet must be a CIDR, got '${nic.subnet}'`);
    opts.push(`net=${nic.subnet}`);
  }
  if (nic.hostAddress !== undefined) opts.push(`host=${ipv4(nic.hostAddress, `nics[${index}].hostAddress`)}`);
  if (nic.dnsAddress !== undefined) opts.push(`dns=${ipv4(nic.dnsAddress, `nics[${index}].dnsAddress`)}`);
  if (nic.dhcpStart !== undefined) opts.push(`dhcpstart=${ipv4(nic.dhcpStart, `nics[${index}].dhcpStart`)}`);
  for (const f of nic.hostForwards ?? []) {
    const addr = f.hostAddress ?? "127.0.0.1";
    if (!/^[0-9.]+$/.test(addr)) throw new QemuSpecError(`hostForwards.hostAddress must be an IPv4 address, got '${addr}'`);
    opts.push(`hostfwd=${f.protocol}:${addr}:${port(f.hostPort, "hostPort")}-:${port(f.guestPort, "guestPort")}`);
  }
  return opts.join(",");
}

/**
 * QEMU's seccomp sandbox, as libvirt and Proxmox confine QEMU: besides the default deny-list,
 * obsolete system calls, set*uid/set*gid/setsid/setpgid (elevateprivileges), fork/vfork/execve and
 * process-creating clone (spawn) and scheduler/affinity/rlimit changes (resourcecontrol) kill it.
 *
 * QEMU 7.2 installs the filter before it daemonizes or switches user, so `-daemonize` (fork,
 * setsid) and `-runas` (setgid) are killed by this very filter: the caller starts QEMU detached
 * itself (launchQemu) and drops privileges before QEMU runs (runAsArgv), as libvirt does.
 */
export const QEMU_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/**
 * The complete argv (program first) that launches a VM in the foreground under the seccomp
 * sandbox (QEMU_SANDBOX), with a pidfile, a QMP unix socket, the serial console written to a file
 * and one virtio-blk boot disk; launchQemu detaches it. Pure: it reads nothing and throws
 * QemuSpecError for a spec it cannot render safely.
 */
export function buildQemuArgv(spec: VmLaunchSpec): string[] {
  const binary = spec.binary ?? "qemu-system-x86_64";
  assertSafeText(binary, "binary");
  if (spec.name === "") throw new QemuSpecError("name must not be empty");
  const name = escapeOptionValue(spec.name, "name");
  if (!UUID_RE.test(spec.uuid)) throw new QemuSpecError(`uuid must be a UUID, got '${spec.uuid}'`);
  const cpus = positiveInt(spec.cpus, "cpus", 255);
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 16 * MIB || spec.memoryBytes % MIB !== 0) {
    throw new QemuSpecError(`memoryBytes must be a whole number of MiB, at least 16 MiB, got ${spec.memoryBytes}`);
  }
  const machine = spec.machine ?? "q35";
  if (machine !== "q35" && machine !== "pc") throw new QemuSpecError(`machine must be 'q35' or 'pc', got '${String(machine)}'`);
  const diskFormat = spec.diskFormat ?? "qcow2";
  if (diskFormat !== "qcow2" && diskFormat !== "raw") throw new QemuSpecError(`diskFormat must be 'qcow2' or 'raw', got '${String(diskFormat)}'`);
  const disk = escapeOptionValue(assertAbsolutePath(spec.diskPath, "diskPath"), "diskPath");
  // -pidfile takes its argument verbatim (no option parsing), so it is not comma-escaped.
  const pidfile = assertAbsolutePath(spec.pidfile, "pidfile");
  const qmp = escapeOptionValue(assertAbsolutePath(spec.qmpSocket, "qmpSocket"), "qmpSocket");
  const serial = escapeOptionValue(assertAbsolutePath(spec.serialLog, "serialLog"), "serialLog");

  let accel: string[];
  switch (spec.accelerator) {
    case "kvm":
      // QEMU 7.2 rejects `-accel kvm:tcg`; two -accel options try KVM, then fall back to TCG.
      accel = ["-accel", "kvm", "-accel", "tcg"];
      break;
    case "tcg":
      accel = ["-accel", "tcg"];
      break;
    default:
      throw new QemuSpecError(`accelerator must be 'kvm' or 'tcg', got '${String(spec.accelerator)}'`);
  }

  const argv = [
    binary,
    "-name", `guest=${name},process=iaas-${name}`,
    "-uuid", spec.uuid.toLowerCase(),
    "-machine", machine,
    ...accel,
    "-smp", String(cpus),
    "-m", String(spec.memoryBytes / MIB),
    // No default devices (VGA, NIC, CD-ROM, serial, monitor) and no host-wide config: every
    // device below is explicit.
    "-nodefaults",
    "-no-user-config",
    "-display", "none",
    // Not -daemonize: its fork and setsid are what the sandbox denies (see QEMU_SANDBOX).
    "-sandbox", QEMU_SANDBOX,
    "-pidfile", pidfile,
    "-chardev", `socket,id=qmp,path=${qmp},server=on,wait=off`,
    "-mon", "chardev=qmp,mode=control",
    // `-serial file:PATH` takes PATH verbatim (commas are not unescaped), so the file chardev is
    // declared with -chardev where escaping works, then used as the first serial port. append=on
    // opens it O_APPEND (not O_TRUNC): every write lands at the end of the file as it is now, so
    // the worker can cut the file's head (console log rotation) without QEMU writing past a hole.
    "-chardev", `file,id=serial0,path=${serial},append=on`,
    "-serial", "chardev:serial0",
    "-drive", `file=${disk},if=none,id=disk0,format=${diskFormat},node-name=fmt-disk0`,
    "-device", "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0",
  ];

  if (spec.seedPath !== undefined) {
    const seed = escapeOptionValue(assertAbsolutePath(spec.seedPath, "seedPath"), "seedPath");
    argv.push("-drive", `file=${seed},if=none,id=seed0,format=raw,readonly=on`, "-device", "virtio-blk-pci,drive=seed0,id=virtio-seed0");
  }
  if (spec.serialSocket !== undefined) {
    const sock = escapeOptionValue(assertAbsolutePath(spec.serialSocket, "serialSocket"), "serialSocket");
    argv.push("-chardev", `socket,id=serial1,path=${sock},server=on,wait=off`, "-serial", "chardev:serial1");
  }
  if (spec.loadvm !== undefined) {
    // -loadvm takes its argument verbatim; snapshot names are a safe character set anyway.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(spec.loadvm)) throw new QemuSpecError(`loadvm must be a snapshot name, got '${spec.loadvm}'`);
    argv.push("-loadvm", spec.loadvm);
  }
  if (spec.hostname !== undefined) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(spec.hostname)) throw new QemuSpecError(`hostname must be a DNS label, got '${spec.hostname}'`);
    argv.push("-fw_cfg", `name=opt/iaas/hostname,string=${spec.hostname}`);
  }

  spec.nics.forEach((nic, i) => {
    const mac = nic.mac ?? macFromUuid(spec.uuid, i);
    if (!MAC_RE.test(mac)) throw new QemuSpecError(`nics[${i}].mac must look like 52:54:00:12:34:56, got '${mac}'`);
    let device = `virtio-net-pci,netdev=net${i},id=nic${i},mac=${mac.toLowerCase()}`;
    let netdev: string;
    if (nic.type === "tap") {
      netdev = tapNetdevArgs(nic, i);
      if (nic.mtu !== undefined) device += `,host_mtu=${positiveInt(nic.mtu, `nics[${i}].mtu`, 65535)}`;
    } else if (nic.type === "user") {
      netdev = netdevArgs(nic, i);
    } else {
      throw new QemuSpecError(`nics[${i}].type must be 'user' or 'tap', got '${String((nic as { type: unknown }).type)}'`);
    }
    argv.push("-netdev", netdev, "-device", device);
  });

  return argv;
}
