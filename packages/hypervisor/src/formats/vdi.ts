import { ImageHeaderError, safeNumber } from "./imageReader.js";

/** What a VirtualBox VDI header says, read without qemu-img. */
export interface VdiHeader {
  /** 0x00010001 for version 1.1, the only one QEMU opens. */
  version: number;
  /** 1 normal (dynamic), 2 fixed, 3 undo, 4 differencing. */
  imageType: number;
  sectorSize: number;
  /** The disk size rounded up to whole sectors, as QEMU does. */
  virtualSize: number;
  /** A non-zero link or parent UUID: a differencing image that needs another file. */
  hasParent: boolean;
}

export const VDI_SIGNATURE = 0xbeda107f;
export const VDI_VERSION_1_1 = 0x00010001;
export const VDI_TYPE_NORMAL = 1;
export const VDI_TYPE_FIXED = 2;
export const VDI_TYPE_DIFF = 4;
/** Bytes QEMU reads as the header. */
export const VDI_HEADER_BYTES = 512;
const SECTOR = 512;
const UUID_LINK = 424;
const UUID_PARENT = 440;

/** Parses the first 512 bytes of a VDI file. Pure. */
export function parseVdiHeader(buf: Uint8Array): VdiHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < VDI_HEADER_BYTES) throw new ImageHeaderError(`VDI header truncated: ${b.length} of ${VDI_HEADER_BYTES} bytes`);
  if (b.readUInt32LE(64) !== VDI_SIGNATURE) throw new ImageHeaderError("not a VDI file (bad signature)");
  const diskSize = b.readBigUInt64LE(368);
  const rounded = ((diskSize + BigInt(SECTOR - 1)) / BigInt(SECTOR)) * BigInt(SECTOR);
  const zero = Buffer.alloc(16);
  return {
    version: b.readUInt32LE(68),
    imageType: b.readUInt32LE(76),
    sectorSize: b.readUInt32LE(360),
    virtualSize: safeNumber(rounded, "VDI disk size"),
    hasParent: !b.subarray(UUID_LINK, UUID_LINK + 16).equals(zero) || !b.subarray(UUID_PARENT, UUID_PARENT + 16).equals(zero),
  };
}
