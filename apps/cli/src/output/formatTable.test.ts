import { describe, expect, it } from "vitest";
import { makeExport, makeHost, makeHostNetwork, makeImage, makeJob, makeNic, makeVm, HOST_ID, progressEvent, stateEvent } from "../testing/fixtures.js";
import { exportTable } from "./exportView.js";
import { formatAge } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";
import { hostTable } from "./hostView.js";
import { imageDetails, imageTable } from "./imageView.js";
import { jobEventLine, jobTable } from "./jobView.js";
import { dryRunView, hostNames, vmTable } from "./vmView.js";

const NOW = new Date("2025-01-01T00:01:00.000Z");

describe("formatTable", () => {
  it("aligns columns two spaces apart without trailing blanks", () => {
    expect(formatTable(["NAME", "STATE", "X"], [["web1", "running", "1"], ["a-long-name", "stopped", ""]])).toBe(
      ["NAME         STATE    X", "web1         running  1", "a-long-name  stopped"].join("\n"),
    );
  });

  it("prints the header of an empty table", () => {
    expect(formatTable(["NAME", "STATE"], [])).toBe("NAME  STATE");
  });

  it("aligns key/value fields and shows missing values as '-'", () => {
    expect(formatFields([["name", "web1"], ["pid", null], ["cpus", 2]])).toBe("name: web1\npid:  -\ncpus: 2");
  });
});

describe("resource tables", () => {
  it("lists VMs with host names and human sizes", () => {
    const vms = [
      makeVm({ nics: [makeNic()] }),
      makeVm({ name: "db", state: "running", hostId: "ffffffff-unknown", memoryBytes: 1536 * 1024 ** 2, imageName: null }),
      makeVm({ name: "app", hostId: "eeeeeeee-unknown", hostName: "hv9", nics: [makeNic(), makeNic({ index: 1, ip: "10.20.0.5" })] }),
      makeVm({ name: "iso", userModeNetworking: true }),
    ];
    expect(vmTable(vms, hostNames([makeHost()]))).toBe(
      [
        "NAME  STATE    HOST      IP               CPUS  MEMORY   DISK   IMAGE",
        "web1  stopped  hv1       10.100.0.2       2     512 MiB  2 GiB  deb12",
        "db    running  ffffffff  -                2     1.5 GiB  2 GiB  3a4b5c6d",
        "app   stopped  hv9       10.100.0.2 (+1)  2     512 MiB  2 GiB  deb12",
        "iso   stopped  hv1       user             2     512 MiB  2 GiB  deb12",
      ].join("\n"),
    );
  });

  it("lists hosts with allocated/total resources and heartbeat age", () => {
    const table = hostTable(
      [
        makeHost({ network: makeHostNetwork() }),
        makeHost({ id: "h2", name: "hv2", state: "offline", drained: true, accelerator: "tcg" }),
        makeHost({ id: "h3", name: "hv3", network: makeHostNetwork({ mode: "user", address: null }) }),
      ],
      NOW,
    );
    const lines = table.split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATE\s+ACCEL\s+CPUS\s+MEMORY\s+DISK\s+VMS\s+NETWORK\s+HEARTBEAT$/);
    expect(lines[1]).toContain(`${HOST_ID}  hv1   online`);
    expect(lines[1]).toMatch(/kvm\s+2\/8\s+512 MiB\/16 GiB\s+2 GiB\/500 GiB\s+1\s+bridge 192\.168\.1\.10\s+5s ago$/);
    expect(lines[2]).toContain("offline,drained  tcg");
    expect(lines[2]).toMatch(/\s1\s+-\s+5s ago$/);
    expect(lines[3]).toMatch(/\s1\s+user\s+5s ago$/);
  });

  it("lists images with format, origin, sizes and a short sha256", () => {
    const table = imageTable([
      makeImage(),
      makeImage({ name: "new", state: "importing", sourceFormat: null, virtualSize: null, storedSize: null, sha256: null, origin: { type: "url", location: "https://example.org/x.qcow2" } }),
    ]);
    expect(table).toBe(
      [
        "NAME   STATE      FORMAT  ORIGIN  VIRTUAL-SIZE  STORED   SHA256",
        "deb12  ready      qcow2   upload  2 GiB         300 MiB  0123456789ab",
        "new    importing  -       url     -             -        -",
      ].join("\n"),
    );
  });

  it("shows an image's origin, compression, labels and upload progress", () => {
    const details = imageDetails(
      makeImage({
        state: "importing",
        origin: { type: "url", location: "https://example.org/deb12.qcow2.xz" },
        compression: "xz",
        labels: { os: "debian", arch: "x86_64" },
        upload: { offset: 1024 ** 3, length: 4 * 1024 ** 3 },
      }),
    );
    expect(details).toContain("origin:           url https://example.org/deb12.qcow2.xz\n");
    expect(details).toContain("format of origin: qcow2\n");
    expect(details).toContain("compression:      xz\n");
    expect(details).toContain("stored size:      300 MiB (qcow2)\n");
    expect(details).toContain("labels:           arch=x86_64, os=debian\n");
    expect(details).toContain("upload:           1 GiB of 4 GiB (25%) received");
  });

  it("lists exports with source, format, size and expiry", () => {
    const table = exportTable([makeExport({ sizeBytes: 3 * 1024 ** 3, compressed: true }), makeExport({ id: "ffffffff-0000-4000-8000-000000000000", state: "pending", source: { type: "vm", id: "v", name: "web1" }, format: "vmdk", expiresAt: null })], NOW);
    expect(table).toBe(
      [
        "ID        STATE    SOURCE       FORMAT              SIZE   EXPIRES  CREATED",
        "7e8f9a0b  ready    image deb12  qcow2 (compressed)  3 GiB  in 23h   1m ago",
        "ffffffff  pending  vm web1      vmdk                -      -        1m ago",
      ].join("\n"),
    );
  });

  it("lists jobs with a short id, target, progress and age", () => {
    const table = jobTable([makeJob({ state: "running", progress: { phase: "create-disk", percent: 42.7 } })], NOW);
    expect(table).toBe(
      ["ID        TYPE       STATE    TARGET   PROGRESS         CREATED", "1a2b3c4d  vm.create  running  vm web1  create-disk 42%  1m ago"].join("\n"),
    );
  });

  it("shows a placement decision with every candidate's verdict", () => {
    const view = dryRunView(
      {
        dryRun: true,
        name: "web2",
        imageId: "img",
        cpus: 2,
        memoryBytes: 1024 ** 3,
        diskBytes: 10 * 1024 ** 3,
        placement: {
          hostId: HOST_ID,
          candidates: [
            { hostId: HOST_ID, fits: true, reasons: [], score: 0.25 },
            { hostId: "h2", fits: false, reasons: ["offline", "needs 2 CPUs, 1 free"], score: null },
          ],
        },
      },
      hostNames([makeHost(), makeHost({ id: "h2", name: "hv2" })]),
    );
    expect(view).toContain(`would be placed on host hv1 (${HOST_ID})`);
    expect(view.split("\n").slice(-3)).toEqual([
      "HOST   FITS  SCORE  REASONS",
      "* hv1  yes   0.25   -",
      "  hv2  no    -      offline; needs 2 CPUs, 1 free",
    ]);
  });

  it("prints job events as time, type and message or progress", () => {
    expect(jobEventLine(stateEvent(1, "running", "picked up"))).toBe("2025-01-01T00:00:01.000Z  state     running: picked up");
    expect(jobEventLine(progressEvent(2, { phase: "convert", percent: 50 }))).toBe("2025-01-01T00:00:02.000Z  progress  convert 50%");
  });

  it("formats ages in the past and the future", () => {
    expect(formatAge("2025-01-01T00:00:00.000Z", NOW)).toBe("1m ago");
    expect(formatAge("2025-01-01T00:01:30.000Z", NOW)).toBe("in 30s");
    expect(formatAge("2024-12-30T00:01:00.000Z", NOW)).toBe("2d ago");
  });
});
