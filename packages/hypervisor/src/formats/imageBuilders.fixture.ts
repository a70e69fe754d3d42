// Hand-built image headers for unit tests: just enough of each format for our parsers and no more.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { guidBytes, VHDX_META } from "./vhdx.js";

export interface Qcow2Opts {
  version?: 2 | 3;
  size?: bigint;
  clusterBits?: number;
  backing?: string;
  backingFormat?: string;
  incompatible?: bigint;
  dataFileName?: string;
  crypt?: number;
  headerLength?: number;
}

/** A qcow2 header: fields, extensions, then the backing file name, in 4 KiB. */
export function qcow2Image(o: Qcow2Opts = {}): Buffer {
  const version = o.version ?? 3;
  const headerLength = o.headerLength ?? (version === 3 ? 104 : 72);
  const exts: Buffer[] = [];
  const ext = (type: number, data: string): void => {
    const d = Buffer.from(data);
    const e = Buffer.alloc(8 + Math.ceil(d.length / 8) * 8);
    e.writeUInt32BE(type, 0);
    e.writeUInt32BE(d.length, 4);
    d.copy(e, 8);
    exts.push(e);
  };
  if (o.backingFormat !== undefined) ext(0xe2792aca, o.backingFormat);
  if (o.dataFileName !== undefined) ext(0x44415441, o.dataFileName);
  exts.push(Buffer.alloc(8)); // end of extensions
  const extBytes = Buffer.concat(exts);
  const backing = Buffer.from(o.backing ?? "");
  const backingOffset = headerLength + extBytes.length;
  const b = Buffer.alloc(Math.max(4096, backingOffset + backing.length));
  b.write("QFI\xfb", 0, "latin1");
  b.writeUInt32BE(version, 4);
  if (backing.length > 0) {
    b.writeBigUInt64BE(BigInt(backingOffset), 8);
    b.writeUInt32BE(backing.length, 16);
  }
  b.writeUInt32BE(o.clusterBits ?? 16, 20);
  b.writeBigUInt64BE(o.size ?? 10n * 2n ** 30n, 24);
  b.writeUInt32BE(o.crypt ?? 0, 32);
  if (version === 3) {
    b.writeBigUInt64BE(o.incompatible ?? 0n, 72);
    b.writeUInt32BE(4, 96); // refcount_order
    b.writeUInt32BE(headerLength, 100);
  }
  extBytes.copy(b, headerLength);
  backing.copy(b, backingOffset);
  return b;
}

/** VMDK descriptor text as qemu-img writes it. */
export function vmdkDescriptor(o: { createType?: string; extents?: string[]; parentHint?: string } = {}): string {
  return [
    "# Disk DescriptorFile",
    "version=1",
    "CID=12345678",
    "parentCID=ffffffff",
    `createType="${o.createType ?? "monolithicSparse"}"`,
    ...(o.parentHint === undefined ? [] : [`parentFileNameHint="${o.parentHint}"`]),
    "",
    "# Extent description",
    ...(o.extents ?? ['RW 20480 SPARSE "disk.vmdk"']),
    "",
    "# The Disk Data Base",
    "#DDB",
    'ddb.adapterType = "ide"',
    "",
  ].join("\n");
}

export interface VmdkSparseOpts {
  capacitySectors?: bigint;
  descriptor?: string;
  version?: number;
  compressAlgorithm?: number;
  /** Grain directory "at end": the real header is a footer; its capacity is this. */
  footerCapacitySectors?: bigint;
  /** Header descriptor offset/size in sectors (default 1 and 20; 0 for none). */
  descSectors?: [bigint, bigint];
}

/** A hosted sparse VMDK (`KDMV`) with its embedded descriptor at sector 1. */
export function vmdkSparseImage(o: VmdkSparseOpts = {}): Buffer {
  const header = (capacity: bigint, gdAtEnd: boolean): Buffer => {
    const h = Buffer.alloc(512);
    h.write("KDMV", 0, "latin1");
    h.writeUInt32LE(o.version ?? 1, 4);
    h.writeUInt32LE(3, 8);
    h.writeBigUInt64LE(capacity, 12);
    h.writeBigUInt64LE(128n, 20);
    const [descOff, descSize] = o.descSectors ?? [1n, 20n];
    h.writeBigUInt64LE(descOff, 28);
    h.writeBigUInt64LE(descSize, 36);
    h.writeUInt32LE(512, 44);
    h.writeBigUInt64LE(gdAtEnd ? 0xffffffffffffffffn : 21n, 56);
    h.writeBigUInt64LE(128n, 64);
    Buffer.from([0x0a, 0x20, 0x0d, 0x0a]).copy(h, 73);
    h.writeUInt16LE(o.compressAlgorithm ?? 0, 77);
    return h;
  };
  const desc = Buffer.alloc(20 * 512);
  desc.write(o.descriptor ?? vmdkDescriptor(), "latin1");
  const parts = [header(o.capacitySectors ?? 20480n, o.footerCapacitySectors !== undefined), desc, Buffer.alloc(128 * 512 - 21 * 512)];
  if (o.footerCapacitySectors !== undefined) {
    const marker = (type: number): Buffer => {
      const m = Buffer.alloc(512);
      m.writeUInt32LE(type, 12);
      return m;
    };
    parts.push(marker(3), header(o.footerCapacitySectors, false), marker(0));
  }
  return Buffer.concat(parts);
}

/** A VDI 1.1 header (as qemu-img writes it) followed by an empty block map. */
export function vdiImage(o: { size?: bigint; type?: number; version?: number; parentUuid?: boolean; sectorSize?: number } = {}): Buffer {
  const b = Buffer.alloc(1024);
  b.write("<<< QEMU VM Virtual Disk Image >>>\n", 0, "latin1");
  b.writeUInt32LE(0xbeda107f, 64);
  b.writeUInt32LE(o.version ?? 0x00010001, 68);
  b.writeUInt32LE(0x180, 72);
  b.writeUInt32LE(o.type ?? 1, 76);
  b.writeUInt32LE(512, 340);
  b.writeUInt32LE(1024, 344);
  b.writeUInt32LE(o.sectorSize ?? 512, 360);
  b.writeBigUInt64LE(o.size ?? 10n * 2n ** 20n, 368);
  b.writeUInt32LE(1 << 20, 376);
  b.fill(0x11, 392, 408); // image UUID
  if (o.parentUuid === true) b.fill(0x22, 440, 456);
  return b;
}

export interface VhdxOpts {
  size?: bigint;
  hasParent?: boolean;
  parentLocator?: boolean;
  unknownRequiredItem?: boolean;
  /** Leave out the virtual disk size item. */
  noSize?: boolean;
}

const VHDX_METADATA_AT = 320 * 1024;

/** A VHDX: file identifier, region table (BAT + metadata) and a metadata region; no log, no data. */
export function vhdxImage(o: VhdxOpts = {}): Buffer {
  const b = Buffer.alloc(512 * 1024);
  b.write("vhdxfile", 0, "latin1");
  const rt = 192 * 1024;
  b.write("regi", rt, "latin1");
  b.writeUInt32LE(2, rt + 8);
  const region = (i: number, guid: string, offset: number, length: number): void => {
    const at = rt + 16 + i * 32;
    Buffer.from(guidBytes(guid), "hex").copy(b, at);
    b.writeBigUInt64LE(BigInt(offset), at + 16);
    b.writeUInt32LE(length, at + 24);
    b.writeUInt32LE(1, at + 28);
  };
  region(0, "2DC27766-F623-4200-9D64-115E9BFD4A08", 448 * 1024, 64 * 1024);
  region(1, "8B7CA206-4790-4B9A-B8FE-575F050F886E", VHDX_METADATA_AT, 128 * 1024);

  const m = VHDX_METADATA_AT;
  b.write("metadata", m, "latin1");
  const items: { guid: string; data: Buffer; flags: number }[] = [];
  const u32 = (v: number): Buffer => {
    const x = Buffer.alloc(4);
    x.writeUInt32LE(v, 0);
    return x;
  };
  const params = Buffer.alloc(8);
  params.writeUInt32LE(32 * 1024 * 1024, 0);
  params.writeUInt32LE(o.hasParent === true ? 2 : 0, 4);
  items.push({ guid: VHDX_META.fileParameters, data: params, flags: 4 });
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(o.size ?? 10n * 2n ** 20n, 0);
  if (o.noSize !== true) items.push({ guid: VHDX_META.virtualDiskSize, data: size, flags: 6 });
  items.push({ guid: VHDX_META.page83Data, data: Buffer.alloc(16, 7), flags: 6 });
  items.push({ guid: VHDX_META.logicalSectorSize, data: u32(512), flags: 6 });
  items.push({ guid: VHDX_META.physicalSectorSize, data: u32(4096), flags: 6 });
  if (o.parentLocator === true) items.push({ guid: VHDX_META.parentLocator, data: Buffer.alloc(64, 1), flags: 4 });
  if (o.unknownRequiredItem === true) items.push({ guid: guidBytes("01234567-89AB-CDEF-0123-456789ABCDEF"), data: Buffer.alloc(8), flags: 4 });
  b.writeUInt16LE(items.length, m + 10);
  let dataAt = 64 * 1024;
  items.forEach((item, i) => {
    const at = m + 32 + i * 32;
    Buffer.from(item.guid, "hex").copy(b, at);
    b.writeUInt32LE(dataAt, at + 16);
    b.writeUInt32LE(item.data.length, at + 20);
    b.writeUInt32LE(item.flags, at + 24);
    item.data.copy(b, m + dataAt);
    dataAt += item.data.length;
  });
  return b;
}

export interface VpcOpts {
  type?: number;
  currentSize?: bigint;
  creator?: string;
  /** Cylinders, heads, sectors per track. */
  chs?: [number, number, number];
  parentName?: string;
  /** Fixed disks: data bytes before the footer. */
  dataBytes?: number;
}

/** A VHD footer with a valid checksum. */
export function vpcFooter(o: VpcOpts = {}): Buffer {
  const f = Buffer.alloc(512);
  const type = o.type ?? 3;
  f.write("conectix", 0, "latin1");
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(type === 2 ? 0xffffffffffffffffn : 512n, 16);
  f.write((o.creator ?? "qem2").padEnd(4, "\0").slice(0, 4), 28, "latin1");
  f.write("Wi2k", 36, "latin1");
  const size = o.currentSize ?? 10n * 2n ** 20n;
  f.writeBigUInt64BE(size, 40);
  f.writeBigUInt64BE(size, 48);
  const [c, h, s] = o.chs ?? [65535, 16, 255];
  f.writeUInt16BE(c, 56);
  f.writeUInt8(h, 58);
  f.writeUInt8(s, 59);
  f.writeUInt32BE(type, 60);
  f.fill(0x33, 68, 84);
  let sum = 0;
  for (const x of f) sum += x;
  f.writeUInt32BE(~sum >>> 0, 64);
  return f;
}

/** A fixed VHD (data + footer) or a dynamic/differencing one (footer copy, dynamic header, BAT, footer). */
export function vpcImage(o: VpcOpts = {}): Buffer {
  const footer = vpcFooter(o);
  if ((o.type ?? 3) === 2) return Buffer.concat([Buffer.alloc(o.dataBytes ?? 1024 * 1024), footer]);
  const dyn = Buffer.alloc(1024);
  dyn.write("cxsparse", 0, "latin1");
  dyn.writeBigUInt64BE(0xffffffffffffffffn, 8);
  dyn.writeBigUInt64BE(1536n, 16);
  dyn.writeUInt32BE(0x00010000, 24);
  dyn.writeUInt32BE(128, 28);
  dyn.writeUInt32BE(2 * 1024 * 1024, 32);
  if (o.parentName !== undefined) {
    Buffer.from(o.parentName, "utf16le").swap16().copy(dyn, 64);
    dyn.writeUInt32BE(0x57326b75, 576); // "W2ku": a Windows relative-path locator
  }
  return Buffer.concat([footer, dyn, Buffer.alloc(512, 0xff), footer]);
}

/**
 * A temporary directory for the current test file (made before its tests, removed after) and a
 * function that writes content to a fresh file in it and returns the path.
 */
export function tempFiles(prefix: string): (content: Buffer | string) => Promise<string> {
  let dir = "";
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return async (content) => {
    const p = join(dir, `f${n++}`);
    await writeFile(p, content);
    return p;
  };
}
