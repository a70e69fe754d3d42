import { cString, ImageHeaderError, readExactly, safeNumber, type ImageReader } from "./imageReader.js";

/** One extent line of a VMDK descriptor: `RW 20480 SPARSE "disk.vmdk"` or `RW 8 FLAT "/dev/sda" 0`. */
export interface VmdkExtent {
  access: string;
  sectors: number;
  /** SPARSE, FLAT, ZERO, VMFS, VMFSSPARSE, SESPARSE, ... as written. */
  type: string;
  /** The file the extent lives in, or null (ZERO extents have none). */
  fileName: string | null;
  /** The line as written, for messages. */
  line: string;
}

/** What a VMDK descriptor (text) says. */
export interface VmdkDescriptor {
  createType: string | null;
  /** Every line that starts with RW, RDONLY or NOACCESS, parsed or not. */
  extents: VmdkExtent[];
  parentFileNameHint: string | null;
}

/** What a VMDK file is, read without qemu-img. */
export type VmdkImage =
  /**
   * A text descriptor naming extent files (`# Disk DescriptorFile`), or a sparse header with
   * capacity 0 whose embedded descriptor QEMU then follows as if it were one (`embedded`).
   */
  | { kind: "descriptor"; embedded: boolean; descriptor: VmdkDescriptor }
  /** A hosted sparse extent (`KDMV`) with its descriptor embedded: monolithicSparse or streamOptimized. */
  | {
      kind: "sparse";
      version: number;
      capacitySectors: number;
      virtualSize: number;
      /** Grains are deflate-compressed (streamOptimized). */
      compressed: boolean;
      /** The embedded descriptor, or null when the header points at none. */
      descriptor: VmdkDescriptor | null;
      /** Set when the descriptor region QEMU reads mentions a parent: the image is a delta disk. */
      parentFileNameHint: string | null;
      hasParent: boolean;
    }
  /** An ESX `COWD` sparse extent: only meaningful with its descriptor and parent. */
  | { kind: "vmfsSparse" };

export const VMDK_SPARSE_MAGIC = "KDMV";
export const VMDK_COWD_MAGIC = "COWD";
const SECTOR = 512;
const GD_AT_END = 0xffffffffffffffffn;
/** QEMU reads at most 1 MiB - 1 of a descriptor. */
const MAX_DESCRIPTOR = (1 << 20) - 1;
/** QEMU looks for parentFileNameHint in 20 sectors from byte 512 of a sparse file. */
const QEMU_DESC_OFFSET = 0x200;
const QEMU_DESC_SIZE = 20 * SECTOR;
const MARKER_FOOTER = 3;
const MARKER_EOS = 0;

const EXTENT_START = /^(RW|RDONLY|NOACCESS)\s/;
const EXTENT_LINE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"\r\n]*)"(?:\s+\d+)?)?\s*$/;

/** Parses descriptor text. Pure; lines that look like extents but do not parse count as type "?". */
export function parseVmdkDescriptor(text: string): VmdkDescriptor {
  let createType: string | null = null;
  let parentFileNameHint: string | null = null;
  const extents: VmdkExtent[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const kv = /^([A-Za-z][\w.]*)\s*=\s*"([^"]*)"/.exec(line);
    if (kv !== null) {
      if (kv[1] === "createType" && createType === null) createType = kv[2] ?? "";
      if (kv[1] === "parentFileNameHint" && parentFileNameHint === null) parentFileNameHint = kv[2] ?? "";
      continue;
    }
    if (!EXTENT_START.test(line)) continue;
    const m = EXTENT_LINE.exec(line);
    extents.push({
      access: m?.[1] ?? line.split(/\s/)[0] ?? "",
      sectors: m === null ? 0 : Number(m[2]),
      type: m?.[3] ?? "?",
      fileName: m?.[4] ?? null,
      line,
    });
  }
  return { createType, extents, parentFileNameHint };
}

/** Whether the first bytes look like a VMDK text descriptor, the way QEMU's probe decides. */
export function looksLikeVmdkDescriptor(head: Buffer): boolean {
  const text = head.toString("latin1");
  if (text.startsWith("# Disk DescriptorFile")) return true;
  // QEMU: skip comment lines and blank lines, then expect `version=1|2|3`.
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    if (/^ *\r?$/.test(line)) continue;
    return /^version=[123]\r?$/.test(line);
  }
  return false;
}

async function readDescriptorText(r: ImageReader, offset: number, maxLength: number): Promise<string> {
  if (offset >= r.size) throw new ImageHeaderError(`the VMDK descriptor at byte ${offset} lies past the end of the file (${r.size} bytes)`);
  return cString(await r.read(offset, Math.min(maxLength, MAX_DESCRIPTOR)));
}

interface SparseHeader {
  version: number;
  capacity: bigint;
  descOffset: bigint;
  descSize: bigint;
  gdOffset: bigint;
  compressAlgorithm: number;
}

function parseSparseHeader(b: Buffer, at: number): SparseHeader {
  return {
    version: b.readUInt32LE(at + 4),
    capacity: b.readBigUInt64LE(at + 12),
    descOffset: b.readBigUInt64LE(at + 28),
    descSize: b.readBigUInt64LE(at + 36),
    gdOffset: b.readBigUInt64LE(at + 56),
    compressAlgorithm: b.readUInt16LE(at + 77),
  };
}

/** streamOptimized files written by VMware keep the real header in a footer 1536 bytes from the end. */
async function readFooterHeader(r: ImageReader): Promise<SparseHeader> {
  const f = await readExactly(r, r.size - 3 * SECTOR, 3 * SECTOR, "the VMDK footer");
  const ok =
    f.toString("latin1", SECTOR, SECTOR + 4) === VMDK_SPARSE_MAGIC &&
    f.readUInt32LE(8) === 0 &&
    f.readUInt32LE(12) === MARKER_FOOTER &&
    f.readBigUInt64LE(2 * SECTOR) === 0n &&
    f.readUInt32LE(2 * SECTOR + 8) === 0 &&
    f.readUInt32LE(2 * SECTOR + 12) === MARKER_EOS;
  if (!ok) throw new ImageHeaderError("the VMDK header says its grain directory is in the footer, but there is no valid footer");
  return parseSparseHeader(f, SECTOR);
}

/**
 * Reads a VMDK file: a text descriptor, a hosted sparse extent (`KDMV`) with its embedded
 * descriptor, or an ESX `COWD` extent. Follows no file names. Throws ImageHeaderError when the
 * header is truncated or impossible.
 */
export async function readVmdk(r: ImageReader): Promise<VmdkImage> {
  const head = await r.read(0, SECTOR);
  const magic = head.toString("latin1", 0, 4);
  if (magic === VMDK_COWD_MAGIC) return { kind: "vmfsSparse" };
  if (magic !== VMDK_SPARSE_MAGIC) {
    return { kind: "descriptor", embedded: false, descriptor: parseVmdkDescriptor(await readDescriptorText(r, 0, MAX_DESCRIPTOR)) };
  }
  if (head.length < SECTOR) throw new ImageHeaderError(`VMDK sparse header truncated: ${head.length} of ${SECTOR} bytes`);

  const primary = parseSparseHeader(head, 0);
  const descOffset = safeNumber(primary.descOffset, "VMDK descriptor offset") * SECTOR;
  if (primary.capacity === 0n && primary.descOffset !== 0n) {
    // QEMU opens this embedded text as a descriptor file and follows its extents (CVE-2022-47951).
    return { kind: "descriptor", embedded: true, descriptor: parseVmdkDescriptor(await readDescriptorText(r, descOffset, MAX_DESCRIPTOR)) };
  }
  const h = primary.gdOffset === GD_AT_END ? await readFooterHeader(r) : primary;

  let descriptor: VmdkDescriptor | null = null;
  if (primary.descOffset !== 0n && primary.descSize !== 0n) {
    const descSize = Math.min(safeNumber(primary.descSize, "VMDK descriptor size") * SECTOR, MAX_DESCRIPTOR);
    descriptor = parseVmdkDescriptor(cString(await readExactly(r, descOffset, descSize, "the embedded VMDK descriptor")));
  }
  // QEMU takes the parent from whatever text lies at byte 512, wherever the header says the descriptor is.
  const window = cString(await r.read(QEMU_DESC_OFFSET, QEMU_DESC_SIZE));
  const hint = descriptor?.parentFileNameHint ?? parseVmdkDescriptor(window).parentFileNameHint;
  const capacitySectors = safeNumber(h.capacity, "VMDK capacity");
  return {
    kind: "sparse",
    version: h.version,
    capacitySectors,
    virtualSize: safeNumber(h.capacity * BigInt(SECTOR), "VMDK virtual size"),
    compressed: h.compressAlgorithm === 1,
    descriptor,
    parentFileNameHint: hint,
    hasParent: hint !== null || window.includes("parentFileNameHint"),
  };
}
