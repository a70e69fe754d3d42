import { ImageHeaderError, readExactly, safeNumber, type ImageReader } from "./imageReader.js";

/** What a VHD (qemu's "vpc") footer and dynamic header say, read without qemu-img. */
export interface VpcImage {
  /** 2 fixed, 3 dynamic, 4 differencing. */
  diskType: number;
  /** Where the footer QEMU uses was found: a copy at byte 0 (dynamic disks) or only at the end. */
  footerAt: "start" | "end";
  creatorApp: string;
  /** The footer's current size. */
  currentSize: number;
  /** cylinders × heads × sectors per track × 512. */
  geometrySize: number;
  /** The size QEMU will present: from the geometry or the current size, depending on the creator. */
  virtualSize: number;
  /** The dynamic disk header names a parent (name or locators), which only differencing disks need. */
  dynamicHeaderNamesParent: boolean;
}

export const VPC_COOKIE = "conectix";
export const VPC_TYPE_FIXED = 2;
export const VPC_TYPE_DYNAMIC = 3;
export const VPC_TYPE_DIFF = 4;
const FOOTER = 512;
const DYN_HEADER = 1024;
const MAX_GEOMETRY_SECTORS = 65535 * 16 * 255;
/** Creators whose footer size QEMU trusts over the CHS geometry (block/vpc.c). */
const CURRENT_SIZE_CREATORS = ["win ", "qem2", "d2v ", "CTXS", "tap\0"];

/** Parses a 512-byte VHD footer (or its copy at the start of a dynamic disk). Pure. */
export function parseVpcFooter(buf: Uint8Array): Omit<VpcImage, "footerAt" | "dynamicHeaderNamesParent"> & { dataOffset: bigint } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < FOOTER) throw new ImageHeaderError(`VHD footer truncated: ${b.length} of ${FOOTER} bytes`);
  if (b.toString("latin1", 0, 8) !== VPC_COOKIE) throw new ImageHeaderError("not a VHD footer (no 'conectix' cookie)");
  const creatorApp = b.toString("latin1", 28, 32);
  const currentSize = safeNumber(b.readBigUInt64BE(48), "VHD current size");
  const geometrySectors = b.readUInt16BE(56) * b.readUInt8(58) * b.readUInt8(59);
  const useCurrent = CURRENT_SIZE_CREATORS.includes(creatorApp) || geometrySectors === MAX_GEOMETRY_SECTORS;
  return {
    diskType: b.readUInt32BE(60),
    creatorApp,
    currentSize,
    geometrySize: geometrySectors * 512,
    // QEMU counts whole sectors.
    virtualSize: useCurrent ? Math.floor(currentSize / 512) * 512 : geometrySectors * 512,
    dataOffset: b.readBigUInt64BE(16),
  };
}

/** Whether a dynamic disk header (1024 bytes at the footer's data offset) names a parent. Pure. */
export function dynamicHeaderNamesParent(buf: Uint8Array): boolean {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < DYN_HEADER) throw new ImageHeaderError(`VHD dynamic disk header truncated: ${b.length} of ${DYN_HEADER} bytes`);
  if (b.toString("latin1", 0, 8) !== "cxsparse") throw new ImageHeaderError("VHD dynamic disk header has no 'cxsparse' cookie");
  const parentName = b.subarray(64, 576);
  if (parentName.some((x) => x !== 0)) return true;
  for (let i = 0; i < 8; i++) {
    if (b.readUInt32BE(576 + i * 24) !== 0) return true; // platform code of a parent locator
  }
  return false;
}

/**
 * Reads a VHD the way QEMU does: the footer copy at byte 0 when there is one, else the footer in
 * the last 512 bytes; for dynamic disks also the dynamic disk header (a differencing disk is refused on its type alone). Throws ImageHeaderError
 * when a structure is missing or cut off.
 */
export async function readVpc(r: ImageReader): Promise<VpcImage> {
  const start = await r.read(0, FOOTER);
  const atStart = start.length === FOOTER && start.toString("latin1", 0, 8) === VPC_COOKIE;
  const footerAt = atStart ? "start" : "end";
  const raw = atStart ? start : await readExactly(r, r.size - FOOTER, FOOTER, "the VHD footer");
  const { dataOffset, ...footer } = parseVpcFooter(raw);
  let namesParent = false;
  if (footer.diskType === VPC_TYPE_DYNAMIC) {
    const off = safeNumber(dataOffset, "VHD dynamic header offset");
    namesParent = dynamicHeaderNamesParent(await readExactly(r, off, DYN_HEADER, "the VHD dynamic disk header"));
  }
  return { ...footer, footerAt, dynamicHeaderNamesParent: namesParent };
}
