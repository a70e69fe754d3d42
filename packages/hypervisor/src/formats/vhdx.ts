import { ImageHeaderError, readExactly, safeNumber, type ImageReader } from "./imageReader.js";

/** What a VHDX file's region table and metadata say, read without qemu-img. */
export interface VhdxImage {
  virtualSize: number;
  blockSize: number;
  logicalSectorSize: number;
  /** File parameters HasParent flag: a differencing disk. */
  hasParent: boolean;
  /** A parent locator metadata item (only differencing disks have one). */
  hasParentLocator: boolean;
  /** GUIDs of regions or metadata items marked required that QEMU does not know. */
  unknownRequired: string[];
}

export const VHDX_SIGNATURE = "vhdxfile";
const REGION_TABLE_OFFSET = 192 * 1024;
const REGION_TABLE_SIZE = 64 * 1024;
const MAX_ENTRIES = 2047;
const METADATA_TABLE_SIZE = 64 * 1024;

/** A GUID in its on-disk (mixed-endian) layout, as lower-case hex. */
export function guidBytes(guid: string): string {
  const h = guid.replaceAll("-", "").toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h)) throw new TypeError(`not a GUID: ${guid}`);
  const swap = (s: string): string => (s.match(/../g) ?? []).reverse().join("");
  return swap(h.slice(0, 8)) + swap(h.slice(8, 12)) + swap(h.slice(12, 16)) + h.slice(16);
}

const REGION_BAT = guidBytes("2DC27766-F623-4200-9D64-115E9BFD4A08");
const REGION_METADATA = guidBytes("8B7CA206-4790-4B9A-B8FE-575F050F886E");
export const VHDX_META = {
  fileParameters: guidBytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"),
  virtualDiskSize: guidBytes("2FA54224-CD1B-4876-B211-5DBED83BF4B8"),
  page83Data: guidBytes("BECA12AB-B2E6-4523-93EF-C309E000C746"),
  logicalSectorSize: guidBytes("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"),
  physicalSectorSize: guidBytes("CDA348C7-445D-4471-9CC9-E9885251C556"),
  parentLocator: guidBytes("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"),
} as const;
const KNOWN_META: ReadonlySet<string> = new Set(Object.values(VHDX_META));

const PARAMS_HAS_PARENT = 1 << 1;
const META_IS_REQUIRED = 1 << 2;
const REGION_IS_REQUIRED = 1;

interface Entry {
  guid: string;
  offset: number;
  length: number;
  flags: number;
}

async function readRegions(r: ImageReader): Promise<{ metadata: Entry; unknownRequired: string[] }> {
  const t = await readExactly(r, REGION_TABLE_OFFSET, REGION_TABLE_SIZE, "the VHDX region table");
  if (t.toString("latin1", 0, 4) !== "regi") throw new ImageHeaderError("VHDX region table signature is missing");
  const count = t.readUInt32LE(8);
  if (count > MAX_ENTRIES) throw new ImageHeaderError(`VHDX region table has ${count} entries (max ${MAX_ENTRIES})`);
  let metadata: Entry | null = null;
  const unknownRequired: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    const e: Entry = {
      guid: t.toString("hex", at, at + 16),
      offset: safeNumber(t.readBigUInt64LE(at + 16), "VHDX region offset"),
      length: t.readUInt32LE(at + 24),
      flags: t.readUInt32LE(at + 28),
    };
    if (e.guid === REGION_METADATA) {
      if (metadata !== null) throw new ImageHeaderError("VHDX region table lists the metadata region twice");
      metadata = e;
    } else if (e.guid !== REGION_BAT && (e.flags & REGION_IS_REQUIRED) !== 0) {
      unknownRequired.push(e.guid);
    }
  }
  if (metadata === null) throw new ImageHeaderError("VHDX region table has no metadata region");
  if (metadata.offset + metadata.length > r.size) throw new ImageHeaderError("VHDX metadata region lies past the end of the file");
  return { metadata, unknownRequired };
}

async function readItem(r: ImageReader, region: Entry, item: Entry | undefined, size: number, what: string): Promise<Buffer> {
  if (item === undefined) throw new ImageHeaderError(`VHDX metadata has no ${what}`);
  if (item.length < size || item.offset + item.length > region.length) throw new ImageHeaderError(`VHDX ${what} item lies outside the metadata region`);
  return readExactly(r, region.offset + item.offset, size, `the VHDX ${what}`);
}

/**
 * Reads the virtual size and the differencing flags of a VHDX file from its first region table
 * and metadata region, as QEMU does (the log is not replayed: QEMU refuses to open read-only an
 * image whose log needs replaying). Throws ImageHeaderError when a structure is missing or cut off.
 */
export async function readVhdx(r: ImageReader): Promise<VhdxImage> {
  const sig = await readExactly(r, 0, 8, "the VHDX file identifier");
  if (sig.toString("latin1") !== VHDX_SIGNATURE) throw new ImageHeaderError("not a VHDX file (bad signature)");
  const { metadata: region, unknownRequired } = await readRegions(r);

  const t = await readExactly(r, region.offset, Math.min(METADATA_TABLE_SIZE, region.length), "the VHDX metadata table");
  if (t.length < 32 || t.toString("latin1", 0, 8) !== "metadata") throw new ImageHeaderError("VHDX metadata table signature is missing");
  const count = t.readUInt16LE(10);
  if (count > MAX_ENTRIES || 32 + count * 32 > t.length) throw new ImageHeaderError(`VHDX metadata table has ${count} entries, more than fit`);
  const items = new Map<string, Entry>();
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const e: Entry = { guid: t.toString("hex", at, at + 16), offset: t.readUInt32LE(at + 16), length: t.readUInt32LE(at + 20), flags: t.readUInt32LE(at + 24) };
    if (items.has(e.guid)) throw new ImageHeaderError(`VHDX metadata item ${e.guid} appears twice`);
    items.set(e.guid, e);
    if (!KNOWN_META.has(e.guid) && (e.flags & META_IS_REQUIRED) !== 0) unknownRequired.push(e.guid);
  }

  const params = await readItem(r, region, items.get(VHDX_META.fileParameters), 8, "file parameters");
  const size = await readItem(r, region, items.get(VHDX_META.virtualDiskSize), 8, "virtual disk size");
  const sector = await readItem(r, region, items.get(VHDX_META.logicalSectorSize), 4, "logical sector size");
  return {
    virtualSize: safeNumber(size.readBigUInt64LE(0), "VHDX virtual disk size"),
    blockSize: params.readUInt32LE(0),
    logicalSectorSize: sector.readUInt32LE(0),
    hasParent: (params.readUInt32LE(4) & PARAMS_HAS_PARENT) !== 0,
    hasParentLocator: items.has(VHDX_META.parentLocator),
    unknownRequired,
  };
}
