import { describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import {
  buildQemuArgv,
  escapeOptionValue,
  macFromUuid,
  parseOptionString,
  QEMU_SANDBOX,
  QemuSpecError,
  type VmLaunchSpec,
} from "./qemuArgv.js";

const UUID = "0b5e3c1a-6f0e-4d6a-9a59-6c3b8e7d2f10";

function spec(over: Partial<VmLaunchSpec> = {}): VmLaunchSpec {
  return {
    name: "web-1",
    uuid: UUID,
    cpus: 2,
    memoryBytes: 512 * 1024 * 1024,
    accelerator: "tcg",
    diskPath: "/var/lib/iaas/vms/web-1/disk.qcow2",
    nics: [{ type: "user" }],
    pidfile: "/run/iaas/web-1.pid",
    qmpSocket: "/run/iaas/web-1.qmp",
    serialLog: "/var/log/iaas/web-1.serial.log",
    ...over,
  };
}

/** Pairs an option with its value, so tests can look up `-drive` etc. */
function valuesOf(argv: string[], flag: string): string[] {
  const out: string[] = [];
  argv.forEach((a, i) => {
    if (a === flag) out.push(argv[i + 1] ?? "");
  });
  return out;
}

function specError(fn: () => unknown): QemuSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof QemuSpecError) return err;
    throw err;
  }
  throw new Error("expected a QemuSpecError");
}

describe("buildQemuArgv", () => {
  it("renders a TCG VM with one disk and one user-mode NIC as the expected argv", () => {
    const mac = macFromUuid(UUID, 0);
    expect(buildQemuArgv(spec())).toEqual([
      "qemu-system-x86_64",
      "-name", "guest=web-1,process=iaas-web-1",
      "-uuid", UUID,
      "-machine", "q35",
      "-accel", "tcg",
      "-smp", "2",
      "-m", "512",
      "-nodefaults",
      "-no-user-config",
      "-display", "none",
      "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-pidfile", "/run/iaas/web-1.pid",
      "-chardev", "socket,id=qmp,path=/run/iaas/web-1.qmp,server=on,wait=off",
      "-mon", "chardev=qmp,mode=control",
      "-chardev", "file,id=serial0,path=/var/log/iaas/web-1.serial.log,append=on",
      "-serial", "chardev:serial0",
      "-drive", "file=/var/lib/iaas/vms/web-1/disk.qcow2,if=none,id=disk0,format=qcow2,node-name=fmt-disk0",
      "-device", "virtio-blk-pci,drive=disk0,id=virtio-disk0,bootindex=0",
      "-netdev", "user,id=net0",
      "-device", `virtio-net-pci,netdev=net0,id=nic0,mac=${mac}`,
    ]);
  });

  it("confines every VM with QEMU's seccomp sandbox, denying privilege changes, spawning, resource control and obsolete calls", () => {
    for (const argv of [buildQemuArgv(spec()), buildQemuArgv(spec({ accelerator: "kvm", nics: [{ type: "tap", ifname: "itap-1", mac: "52:54:00:aa:bb:cc" }] }))]) {
      expect(valuesOf(argv, "-sandbox")).toEqual(["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]);
      expect(valuesOf(argv, "-sandbox")).toEqual([QEMU_SANDBOX]);
      // The sandbox kills -daemonize (fork, setsid) and -runas (setgid): the worker does both itself.
      expect(argv).not.toContain("-daemonize");
      expect(argv).not.toContain("-runas");
    }
  });

  it("asks for KVM with a TCG fallback as two -accel options (QEMU 7.2 rejects -accel kvm:tcg)", () => {
    const argv = buildQemuArgv(spec({ accelerator: "kvm" }));
    expect(valuesOf(argv, "-accel")).toEqual(["kvm", "tcg"]);
    expect(argv.join(" ")).not.toContain("kvm:tcg");
  });

  it("uses the pc machine type, a raw disk and another binary when asked", () => {
    const argv = buildQemuArgv(spec({ machine: "pc", diskFormat: "raw", binary: "/opt/qemu/bin/qemu-system-x86_64" }));
    expect(argv[0]).toBe("/opt/qemu/bin/qemu-system-x86_64");
    expect(valuesOf(argv, "-machine")).toEqual(["pc"]);
    expect(valuesOf(argv, "-drive")[0]).toContain(",format=raw,");
  });

  it("doubles commas in names and paths that QEMU parses as options", () => {
    const argv = buildQemuArgv(
      spec({
        name: "a,b",
        diskPath: "/srv/x,format=raw/disk.qcow2",
        qmpSocket: "/run/a,b.qmp",
        serialLog: "/log/a,b.log",
      }),
    );
    expect(valuesOf(argv, "-name")).toEqual(["guest=a,,b,process=iaas-a,,b"]);
    expect(valuesOf(argv, "-drive")).toEqual(["file=/srv/x,,format=raw/disk.qcow2,if=none,id=disk0,format=qcow2,node-name=fmt-disk0"]);
    expect(valuesOf(argv, "-chardev")).toEqual(["socket,id=qmp,path=/run/a,,b.qmp,server=on,wait=off", "file,id=serial0,path=/log/a,,b.log,append=on"]);
    // The injected "format=raw" stays inside the file name once parsed back.
    const drive = parseOptionString(valuesOf(argv, "-drive")[0] ?? "");
    expect(drive.filter(([k]) => k === "format")).toEqual([["format", "qcow2"]]);
    expect(drive[0]).toEqual(["file", "/srv/x,format=raw/disk.qcow2"]);
  });

  it("passes the pidfile verbatim, since -pidfile is not an option string", () => {
    const argv = buildQemuArgv(spec({ pidfile: "/run/a,b.pid" }));
    expect(valuesOf(argv, "-pidfile")).toEqual(["/run/a,b.pid"]);
  });

  it.each([
    ["diskPath", "disk.qcow2"],
    ["pidfile", "run/x.pid"],
    ["qmpSocket", "./x.qmp"],
    ["serialLog", "serial.log"],
  ] as const)("refuses a relative %s", (field, value) => {
    const err = specError(() => buildQemuArgv(spec({ [field]: value })));
    expect(err.message).toContain(`${field} must be an absolute path`);
    expect(err).toBeInstanceOf(IaasError);
    expect(err.code).toBe("QEMU_FAILED");
    expect(err.retryable).toBe(false);
  });

  it("refuses paths with '..' segments", () => {
    expect(specError(() => buildQemuArgv(spec({ diskPath: "/srv/vms/../../etc/shadow" }))).message).toContain("normalized");
  });

  it.each(["a\nb", "a\0b", "a\rb"])("refuses characters that cannot be escaped (%j)", (bad) => {
    expect(() => buildQemuArgv(spec({ name: bad }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ diskPath: `/srv/${bad}` }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ pidfile: `/run/${bad}` }))).toThrow(QemuSpecError);
  });

  it("refuses memory that is not a whole number of MiB and impossible CPU counts", () => {
    expect(specError(() => buildQemuArgv(spec({ memoryBytes: 512 * 1024 * 1024 + 1 }))).message).toContain("whole number of MiB");
    expect(() => buildQemuArgv(spec({ memoryBytes: 1024 * 1024 }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ cpus: 0 }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ cpus: 1.5 }))).toThrow(QemuSpecError);
  });

  it("refuses a uuid that is not a UUID and an empty name", () => {
    expect(() => buildQemuArgv(spec({ uuid: "x,y" }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ name: "" }))).toThrow(QemuSpecError);
  });

  it("gives each NIC its own netdev, id and derived MAC, with forwards and restrict", () => {
    const argv = buildQemuArgv(
      spec({
        nics: [
          { type: "user", restrict: true, hostForwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }] },
          { type: "user", mac: "52:54:00:AA:BB:CC" },
        ],
      }),
    );
    expect(valuesOf(argv, "-netdev")).toEqual(["user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22", "user,id=net1"]);
    expect(valuesOf(argv, "-device").slice(1)).toEqual([
      `virtio-net-pci,netdev=net0,id=nic0,mac=${macFromUuid(UUID, 0)}`,
      "virtio-net-pci,netdev=net1,id=nic1,mac=52:54:00:aa:bb:cc",
    ]);
  });

  it("refuses a malformed MAC, port or forward address", () => {
    expect(() => buildQemuArgv(spec({ nics: [{ type: "user", mac: "52:54:00:aa:bb" }] }))).toThrow(QemuSpecError);
    expect(() => buildQemuArgv(spec({ nics: [{ type: "user", mac: "52:54:00:aa:bb:cc,x=y" }] }))).toThrow(QemuSpecError);
    expect(() =>
      buildQemuArgv(spec({ nics: [{ type: "user", hostForwards: [{ protocol: "tcp", hostPort: 70000, guestPort: 22 }] }] })),
    ).toThrow(QemuSpecError);
    expect(() =>
      buildQemuArgv(
        spec({ nics: [{ type: "user", hostForwards: [{ protocol: "tcp", hostAddress: "0.0.0.0,x", hostPort: 1, guestPort: 2 }] }] }),
      ),
    ).toThrow(QemuSpecError);
  });

  it("omits NICs when there are none", () => {
    expect(buildQemuArgv(spec({ nics: [] }))).not.toContain("-netdev");
  });

  it("attaches a tap NIC by name, without scripts, advertising the network's MTU", () => {
    const argv = buildQemuArgv(spec({ nics: [{ type: "tap", ifname: "itap-1a2b3c4d", mac: "52:54:00:aa:bb:cc", mtu: 1450 }] }));
    expect(valuesOf(argv, "-netdev")).toEqual(["tap,id=net0,ifname=itap-1a2b3c4d,script=no,downscript=no"]);
    expect(valuesOf(argv, "-device")).toContain("virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:aa:bb:cc,host_mtu=1450");
  });

  it("refuses a tap name that is not a safe interface name", () => {
    expect(specError(() => buildQemuArgv(spec({ nics: [{ type: "tap", ifname: "tap0,script=/x", mac: "52:54:00:aa:bb:cc" }] }))).message).toMatch(/ifname/);
  });

  it("pins an isolated user-mode NIC to its IPAM address, gateway and a DNS address apart from both", () => {
    const argv = buildQemuArgv(
      spec({ nics: [{ type: "user", restrict: true, subnet: "10.20.0.0/24", hostAddress: "10.20.0.1", dnsAddress: "10.20.0.254", dhcpStart: "10.20.0.3" }] }),
    );
    expect(valuesOf(argv, "-netdev")).toEqual(["user,id=net0,restrict=on,net=10.20.0.0/24,host=10.20.0.1,dns=10.20.0.254,dhcpstart=10.20.0.3"]);
  });

  it("adds the cloud-init seed read-only, a second serial port as a socket and the host name over fw_cfg", () => {
    const argv = buildQemuArgv(spec({ seedPath: "/var/lib/iaas/vms/x/seed.img", serialSocket: "/var/lib/iaas/vms/x/ttyS1.sock", hostname: "web-1" }));
    expect(valuesOf(argv, "-drive")).toContain("file=/var/lib/iaas/vms/x/seed.img,if=none,id=seed0,format=raw,readonly=on");
    expect(valuesOf(argv, "-chardev")).toContain("socket,id=serial1,path=/var/lib/iaas/vms/x/ttyS1.sock,server=on,wait=off");
    expect(valuesOf(argv, "-serial")).toEqual(["chardev:serial0", "chardev:serial1"]);
    expect(valuesOf(argv, "-fw_cfg")).toEqual(["name=opt/iaas/hostname,string=web-1"]);
    expect(specError(() => buildQemuArgv(spec({ hostname: "a,b" }))).message).toMatch(/hostname/);
  });
});

describe("macFromUuid", () => {
  it("is deterministic, locally administered unicast and differs per NIC index", () => {
    const a = macFromUuid(UUID);
    expect(a).toBe(macFromUuid(UUID.toUpperCase()));
    expect(a).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macFromUuid(UUID, 1)).not.toBe(a);
    expect(macFromUuid("11111111-2222-3333-4444-555555555555")).not.toBe(a);
    const first = parseInt(a.slice(0, 2), 16);
    expect(first & 0b10).toBe(0b10);
    expect(first & 0b01).toBe(0);
  });
});

describe("escapeOptionValue / parseOptionString", () => {
  it("round-trips values with commas", () => {
    const v = "a,b,,c";
    expect(escapeOptionValue(v)).toBe("a,,b,,,,c");
    expect(parseOptionString(`file=${escapeOptionValue(v)},x=1`)).toEqual([
      ["file", v],
      ["x", "1"],
    ]);
  });

  it("gives a bare first part the empty key", () => {
    expect(parseOptionString("user,id=net0")).toEqual([
      ["", "user"],
      ["id", "net0"],
    ]);
  });
});
