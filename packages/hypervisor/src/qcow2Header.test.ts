import { describe, expect, it } from "vitest";
import { parseQcow2Header, qcow2ClusterSize, Qcow2HeaderError } from "./qcow2Header.js";

/** A minimal version 2 header (72 bytes) in a 512-byte buffer. */
function v2(size: bigint, clusterBits = 16): Buffer {
  const b = Buffer.alloc(512);
  b.write("QFI\xfb", 0, "latin1");
  b.writeUInt32BE(2, 4);
  b.writeUInt32BE(clusterBits, 20);
  b.writeBigUInt64BE(size, 24);
  return b;
}

describe("parseQcow2Header", () => {
  it("reads a version 2 header with no extensions", () => {
    expect(parseQcow2Header(v2(5n * 2n ** 20n), 512)).toMatchObject({
      version: 2,
      virtualSize: 5 * 2 ** 20,
      clusterBits: 16,
      backingFile: null,
      hasDataFile: false,
      encrypted: false,
      headerLength: 72,
    });
  });

  it("reads a backing file name placed after the header", () => {
    const b = v2(2n ** 20n);
    b.writeBigUInt64BE(80n, 8);
    b.writeUInt32BE(4, 16);
    b.write("base", 80);
    expect(parseQcow2Header(b, 512).backingFile).toBe("base");
  });

  it("refuses offsets that point past the data it was given or the file's end", () => {
    const b = v2(2n ** 20n);
    b.writeBigUInt64BE(500n, 8);
    b.writeUInt32BE(100, 16);
    expect(() => parseQcow2Header(b, 512)).toThrow(Qcow2HeaderError);
    expect(() => parseQcow2Header(v2(1n), 60)).toThrow(/truncated/);
  });

  it("refuses an extension that runs past the first cluster", () => {
    const b = v2(2n ** 20n, 9); // 512-byte clusters
    b.writeUInt32BE(0x12345678, 72);
    b.writeUInt32BE(1000, 76);
    expect(() => parseQcow2Header(b, 512)).toThrow(/past the first cluster/);
  });

  it("refuses a virtual size beyond what a JS number holds exactly", () => {
    expect(() => parseQcow2Header(v2(2n ** 60n), 512)).toThrow(/too large/);
  });
});

describe("qcow2ClusterSize", () => {
  it("reads cluster_bits and refuses impossible values", () => {
    expect(qcow2ClusterSize(v2(1n, 21))).toBe(2 * 1024 * 1024);
    expect(() => qcow2ClusterSize(v2(1n, 8))).toThrow(Qcow2HeaderError);
    expect(() => qcow2ClusterSize(Buffer.alloc(10))).toThrow(/truncated/);
  });
});
