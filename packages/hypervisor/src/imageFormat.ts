import { open } from "node:fs/promises";
import { IaasError, type ImageFormat } from "@iaas/contracts";
import { fileImageReader, ImageHeaderError } from "./formats/imageReader.js";
import { VDI_HEADER_BYTES, VDI_SIGNATURE, parseVdiHeader, type VdiHeader } from "./formats/vdi.js";
import { readVhdx, VHDX_SIGNATURE, type VhdxImage } from "./formats/vhdx.js";
import { looksLikeVmdkDescriptor, readVmdk, VMDK_COWD_MAGIC, VMDK_SPARSE_MAGIC, type VmdkImage } from "./formats/vmdk.js";
import { readVpc, VPC_COOKIE, type VpcImage } from "./formats/vpc.js";
import { parseQcow2Header, QCOW2_MAGIC, qcow2ClusterSize, type Qcow2Header } from "./qcow2Header.js";

/** Compressed containers: not images, but recognized so the caller can decompress first. */
export type CompressedFormat = "gzip" | "xz" | "zstd" | "bzip2";

/** Formats recognized only to be refused with a clear message. */
export type UnsupportedImageFormat = "qed" | "luks" | "qcow" | "parallels" | CompressedFormat;

/** What a file's header says it is, read without qemu-img. */
export type DetectedImage =
  | ({ format: "qcow2"; fileSize: number } & Qcow2Header)
  | { format: "raw"; virtualSize: number; fileSize: number; backingFile: null; hasDataFile: false }
  | ({ format: "vmdk"; fileSize: number } & VmdkImage)
  | ({ format: "vdi"; fileSize: number } & VdiHeader)
  | ({ format: "vhdx"; fileSize: number } & VhdxImage)
  | ({ format: "vpc"; fileSize: number } & VpcImage)
  | { format: UnsupportedImageFormat; fileSize: number };

const HEAD_BYTES = 4096;
const MAX_CLUSTER_READ = 2 * 1024 * 1024;

const COMPRESSED: ReadonlySet<string> = new Set<CompressedFormat>(["gzip", "xz", "zstd", "bzip2"]);

/** Whether a sniffed format is a compressed container rather than an image. */
export function isCompressedFormat(format: string): format is CompressedFormat {
  return COMPRESSED.has(format);
}

function startsWith(b: Buffer, sig: string | number[], at = 0): boolean {
  const s = typeof sig === "string" ? Buffer.from(sig, "latin1") : Buffer.from(sig);
  return b.length >= at + s.length && b.subarray(at, at + s.length).equals(s);
}

/** Identifies a format from the first bytes (and the last 512, for VHD footers). Pure; null = no magic (raw). */
export function sniffFormat(head: Buffer, tail: Buffer): Exclude<ImageFormat, "raw"> | UnsupportedImageFormat | null {
  if (head.length >= 4 && head.readUInt32BE(0) === QCOW2_MAGIC) return head.length >= 8 && head.readUInt32BE(4) === 1 ? "qcow" : "qcow2";
  if (startsWith(head, VMDK_SPARSE_MAGIC) || startsWith(head, VMDK_COWD_MAGIC) || looksLikeVmdkDescriptor(head.subarray(0, 1024))) return "vmdk";
  if (head.length >= 68 && head.readUInt32LE(64) === VDI_SIGNATURE) return "vdi";
  if (startsWith(head, VHDX_SIGNATURE)) return "vhdx";
  if (startsWith(head, VPC_COOKIE) || startsWith(tail, VPC_COOKIE)) return "vpc";
  if (startsWith(head, "QED\0")) return "qed";
  if (startsWith(head, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) return "luks";
  if (startsWith(head, "WithoutFreeSpace") || startsWith(head, "WithouFreSpacExt")) return "parallels";
  return sniffCompression(head);
}

/** gzip, xz, zstd or bzip2 from the first bytes, else null. Pure. */
export function sniffCompression(head: Buffer): CompressedFormat | null {
  if (startsWith(head, [0x1f, 0x8b])) return "gzip";
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "xz";
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return "zstd";
  if (startsWith(head, "BZh") && startsWith(head, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4)) return "bzip2";
  return null;
}

/** Whether a file is gzip- or xz-compressed (by its magic bytes), so it can be decompressed before inspection. */
export async function detectCompression(path: string): Promise<"gzip" | "xz" | null> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(6);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const kind = sniffCompression(head.subarray(0, bytesRead));
    return kind === "gzip" || kind === "xz" ? kind : null;
  } finally {
    await fh.close();
  }
}

/** IaasError IMAGE_INVALID: the file cannot be an image. */
export function invalidImage(path: string, reason: string, cause?: unknown): IaasError {
  return new IaasError("IMAGE_INVALID", `'${path}' is not a usable disk image: ${reason}`, {
    retryable: false,
    hint: "upload a qcow2, raw, vmdk, vdi, vhdx or vhd disk image; check that the upload finished and the file is not truncated",
    details: { path },
    cause,
  });
}

/**
 * Reads a file's header and says what format it is, without running qemu-img. Reads only headers,
 * descriptors and metadata tables, and follows no file name an image contains.
 * Throws IaasError IMAGE_INVALID for an empty file or a malformed/truncated header.
 */
export async function detectImageFormat(path: string): Promise<DetectedImage> {
  const fh = await open(path, "r");
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalidImage(path, "it is not a regular file");
    const fileSize = st.size;
    if (fileSize === 0) throw invalidImage(path, "the file is empty");
    const reader = fileImageReader(fh, fileSize);
    const head = await reader.read(0, HEAD_BYTES);
    const tail = await reader.read(Math.max(0, fileSize - 512), 512);

    const sniffed = sniffFormat(head, tail);
    try {
      switch (sniffed) {
        case null:
          if (fileSize % 512 !== 0) throw invalidImage(path, `no known image header, and its size (${fileSize} bytes) is not a multiple of 512 as a raw disk's is`);
          return { format: "raw", virtualSize: fileSize, fileSize, backingFile: null, hasDataFile: false };
        case "qcow2": {
          const clusterSize = qcow2ClusterSize(head);
          const buf = clusterSize > head.length ? await reader.read(0, Math.min(clusterSize, MAX_CLUSTER_READ)) : head;
          return { format: "qcow2", fileSize, ...parseQcow2Header(buf, fileSize) };
        }
        case "vmdk":
          return { format: "vmdk", fileSize, ...(await readVmdk(reader)) };
        case "vdi":
          return { format: "vdi", fileSize, ...parseVdiHeader(await reader.read(0, VDI_HEADER_BYTES)) };
        case "vhdx":
          return { format: "vhdx", fileSize, ...(await readVhdx(reader)) };
        case "vpc":
          return { format: "vpc", fileSize, ...(await readVpc(reader)) };
        default:
          return { format: sniffed, fileSize };
      }
    } catch (err) {
      if (err instanceof ImageHeaderError) throw invalidImage(path, err.message, err);
      throw err;
    }
  } finally {
    await fh.close();
  }
}
