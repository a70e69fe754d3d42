import { ImageHeaderError } from "./formats/imageReader.js";

/** What a qcow2 header says about an image, read without qemu-img. */
export interface Qcow2Header {
  version: 2 | 3;
  virtualSize: number;
  clusterBits: number;
  /** Backing file name stored in the image, or null. */
  backingFile: string | null;
  /** Backing format from the header extension, or null. */
  backingFormat: string | null;
  /** Incompatible feature bit 2 or a data-file extension: the data lives in another file. */
  hasDataFile: boolean;
  /** External data file name from the header extension, or null. */
  dataFile: string | null;
  /** crypt_method != 0 (AES or LUKS encryption). */
  encrypted: boolean;
  /** Incompatible feature bit 0: not closed cleanly (qemu repairs it on open). */
  dirty: boolean;
  /** Incompatible feature bit 1: qemu marked the image corrupt. */
  corrupt: boolean;
  /** Incompatible feature bits QEMU 7.2 does not know (bits 5 and up). */
  unknownIncompatibleFeatures: bigint;
  /** Bytes of the file the header covers: where the caller must have read up to. */
  headerLength: number;
}

/** Why a qcow2 header cannot be read. */
export class Qcow2HeaderError extends ImageHeaderError {
  constructor(message: string) {
    super(message);
    this.name = "Qcow2HeaderError";
  }
}

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441; // "DATA"
const MAX_BACKING_NAME = 1023;
const MAX_EXT_STRING = 4096;

const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_KNOWN = (1n << 5n) - 1n; // dirty, corrupt, data file, compression type, extended L2

/**
 * Cluster size from the first 24 bytes of a qcow2 file, so a caller knows how much to read
 * (header, extensions and backing file name all live in the first cluster).
 */
export function qcow2ClusterSize(head: Uint8Array): number {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length < 24) throw new Qcow2HeaderError(`qcow2 header truncated: ${b.length} bytes, need at least 72`);
  const bits = b.readUInt32BE(20);
  if (bits < 9 || bits > 21) throw new Qcow2HeaderError(`qcow2 cluster_bits ${bits} is outside 9..21`);
  return 2 ** bits;
}

/**
 * Parses a qcow2 header from the start of a file. `buf` should hold the first cluster (or the
 * whole file, if shorter); `fileSize` bounds the offsets the header may point to.
 */
export function parseQcow2Header(buf: Uint8Array, fileSize: number): Qcow2Header {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const need = (end: number, what: string): void => {
    if (end > b.length || end > fileSize) throw new Qcow2HeaderError(`qcow2 header truncated: ${what} ends at byte ${end}, file has ${Math.min(b.length, fileSize)}`);
  };
  need(72, "the version 2 header");
  if (b.readUInt32BE(0) !== QCOW2_MAGIC) throw new Qcow2HeaderError("not a qcow2 file (bad magic)");
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Qcow2HeaderError(`qcow2 version ${version} is not 2 or 3`);

  const clusterSize = qcow2ClusterSize(b);
  const clusterBits = Math.log2(clusterSize);
  const virtualSize = b.readBigUInt64BE(24);
  if (virtualSize > BigInt(Number.MAX_SAFE_INTEGER)) throw new Qcow2HeaderError(`qcow2 virtual size ${virtualSize} is too large`);
  const cryptMethod = b.readUInt32BE(32);

  let incompatible = 0n;
  let headerLength = 72;
  if (version === 3) {
    need(104, "the version 3 header");
    incompatible = b.readBigUInt64BE(72);
    headerLength = b.readUInt32BE(100);
    if (headerLength < 104 || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw new Qcow2HeaderError(`qcow2 header_length ${headerLength} is invalid`);
    }
    need(headerLength, "the header");
  }

  const backingOffset = b.readBigUInt64BE(8);
  const backingSize = b.readUInt32BE(16);
  let backingFile: string | null = null;
  if (backingOffset !== 0n && backingSize > 0) {
    if (backingSize > MAX_BACKING_NAME) throw new Qcow2HeaderError(`qcow2 backing file name is ${backingSize} bytes (max ${MAX_BACKING_NAME})`);
    if (backingOffset > BigInt(clusterSize - backingSize)) throw new Qcow2HeaderError("qcow2 backing file name lies outside the first cluster");
    const off = Number(backingOffset);
    need(off + backingSize, "the backing file name");
    backingFile = b.toString("utf8", off, off + backingSize);
  }

  let backingFormat: string | null = null;
  let dataFile: string | null = null;
  let extDataFile = false;
  let pos = headerLength;
  const extLimit = Math.min(clusterSize, fileSize);
  // Header extensions follow the header, each 8-byte aligned, ended by type 0.
  while (pos + 8 <= extLimit) {
    need(pos + 8, "a header extension");
    const type = b.readUInt32BE(pos);
    const len = b.readUInt32BE(pos + 4);
    if (type === EXT_END) break;
    const dataStart = pos + 8;
    const next = dataStart + Math.ceil(len / 8) * 8;
    if (next > extLimit) throw new Qcow2HeaderError(`qcow2 header extension 0x${type.toString(16)} runs past the first cluster`);
    need(dataStart + len, `header extension 0x${type.toString(16)}`);
    if (type === EXT_BACKING_FORMAT && len <= MAX_EXT_STRING) backingFormat = b.toString("utf8", dataStart, dataStart + len);
    if (type === EXT_DATA_FILE) {
      extDataFile = true;
      dataFile = len <= MAX_EXT_STRING ? b.toString("utf8", dataStart, dataStart + len) : null;
    }
    pos = next;
  }

  return {
    version,
    virtualSize: Number(virtualSize),
    clusterBits,
    backingFile,
    backingFormat,
    hasDataFile: (incompatible & INCOMPAT_DATA_FILE) !== 0n || extDataFile,
    dataFile,
    encrypted: cryptMethod !== 0,
    dirty: (incompatible & INCOMPAT_DIRTY) !== 0n,
    corrupt: (incompatible & INCOMPAT_CORRUPT) !== 0n,
    unknownIncompatibleFeatures: incompatible & ~INCOMPAT_KNOWN,
    headerLength,
  };
}
