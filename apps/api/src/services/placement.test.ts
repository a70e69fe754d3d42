import { describe, expect, it } from "vitest";
import { GIB, IaasError, MIB } from "@iaas/contracts";
import { placeVm, type HostCapacity } from "./placement.js";

function host(id: string, over: Partial<HostCapacity> = {}): HostCapacity {
  return {
    id,
    online: true,
    drained: false,
    heartbeatAgeSeconds: 1,
    capacity: { cpus: 8, memoryBytes: 8 * GIB, diskBytes: 100 * GIB },
    allocated: { cpus: 0, memoryBytes: 0, diskBytes: 0, vms: 0 },
    ...over,
  };
}
const small = { name: "web", cpus: 1, memoryBytes: 512 * MIB, diskBytes: 2 * GIB };

describe("placeVm", () => {
  it("spreads load onto the least loaded host", () => {
    const busy = host("a", { allocated: { cpus: 4, memoryBytes: 4 * GIB, diskBytes: 10 * GIB, vms: 3 } });
    const idle = host("b");
    expect(placeVm([busy, idle], small).hostId).toBe("b");
  });

  it("breaks ties by the number of VMs, then by host id", () => {
    const a = host("a", { allocated: { cpus: 0, memoryBytes: 0, diskBytes: 0, vms: 2 } });
    const b = host("b");
    expect(placeVm([a, b], small).hostId).toBe("b");
    expect(placeVm([host("z"), host("c")], small).hostId).toBe("c");
  });

  it("skips offline and drained hosts, saying why", () => {
    const off = host("off", { online: false, heartbeatAgeSeconds: 95 });
    const drained = host("dr", { drained: true });
    const ok = host("ok");
    const p = placeVm([off, drained, ok], small);
    expect(p.hostId).toBe("ok");
    expect(p.candidates.find((c) => c.hostId === "off")?.reasons).toEqual(["offline (last heartbeat 95s ago)"]);
    expect(p.candidates.find((c) => c.hostId === "dr")?.reasons).toEqual(["drained"]);
  });

  it("counts what is already placed on a host", () => {
    const full = host("a", { allocated: { cpus: 8, memoryBytes: 1 * GIB, diskBytes: 0, vms: 8 } });
    expect(() => placeVm([full], small)).toThrow(/a: needs 1 vCPU, 0 free/);
  });

  it("lists what each host lacks when nothing fits", () => {
    const tiny = host("tiny", { capacity: { cpus: 1, memoryBytes: 256 * MIB, diskBytes: 1 * GIB } });
    const off = host("gone", { online: false, heartbeatAgeSeconds: 300 });
    try {
      placeVm([tiny, off], small);
      expect.unreachable("placement should fail");
    } catch (err) {
      expect(err).toBeInstanceOf(IaasError);
      const e = err as IaasError;
      expect(e.code).toBe("NO_HOST_AVAILABLE");
      expect(e.message).toContain("tiny: needs 512 MiB memory, 256 MiB free, needs 2 GiB disk, 1 GiB free");
      expect(e.message).toContain("gone: offline (last heartbeat 300s ago)");
      expect(e.hint).toMatch(/iaas vm delete/);
    }
  });

  it("honours a pinned host even when another is emptier", () => {
    const a = host("a", { allocated: { cpus: 2, memoryBytes: GIB, diskBytes: GIB, vms: 1 } });
    expect(placeVm([a, host("b")], small, "a").hostId).toBe("a");
  });

  it("refuses a pinned host that cannot take the VM, and an unknown one", () => {
    expect(() => placeVm([host("a", { drained: true }), host("b")], small, "a")).toThrow(/a: drained/);
    expect(() => placeVm([host("a")], small, "nope")).toThrow(/host 'nope' not found/);
  });
});
