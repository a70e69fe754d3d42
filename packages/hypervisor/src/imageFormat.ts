import { open } from "node:fs/promises";
import { IaasError } from "@iaas/contracts";
import { parseQcow2Header, QCOW2_MAGIC, qcow2ClusterSize, Qcow2HeaderError, type Qcow2Header } from "./qcow2Header.js";

/** Formats recognized only to be refused with a clear message. */
export type UnsupportedImageFormat = "vmdk" | "vdi" | "vhdx" | "vpc" | "qed" | "luks" | "qcow" | "parallels" | "gzip" | "xz" | "zstd" | "bzip2";

/** What a file's header says it is, read without qemu-img. */
export type DetectedImage =
  | ({ format: "qcow2"; fileSize: number } & Qcow2Header)
  | { format: "raw"; virtualSize: number; fileSize: number; backingFile: null; hasDataFile: false }
  | { format: UnsupportedImageFormat; fileSize: number };

/** An image that may be imported: self-contained qcow2 or raw. */
export interface InspectedImage {
  format: "qcow2" | "raw";
  virtualSize: number;
  fileSize: number;
}

const HEAD_BYTES = 4096;
const MAX_CLUSTER_READ = 2 * 1024 * 1024;

const CONVERT_HINT = (fmt: string): string =>
  `convert it to qcow2 first, e.g. \`qemu-img convert -f ${fmt} -O qcow2 in.${fmt} out.qcow2\`, and upload the result`;

const DESCRIPTIONS: Record<UnsupportedImageFormat, { what: string; hint: string }> = {
  vmdk: { what: "a VMware VMDK image", hint: CONVERT_HINT("vmdk") },
  vdi: { what: "a VirtualBox VDI image", hint: CONVERT_HINT("vdi") },
  vhdx: { what: "a Hyper-V VHDX image", hint: CONVERT_HINT("vhdx") },
  vpc: { what: "a Virtual PC / Hyper-V VHD image", hint: CONVERT_HINT("vpc") },
  qed: { what: "a QED image", hint: CONVERT_HINT("qed") },
  luks: { what: "a LUKS-encrypted image", hint: "decrypt it and upload a qcow2 or raw image" },
  qcow: { what: "a qcow version 1 image", hint: CONVERT_HINT("qcow") },
  parallels: { what: "a Parallels image", hint: CONVERT_HINT("parallels") },
  gzip: { what: "a gzip-compressed file", hint: "decompress it (`gunzip`) and upload the disk image inside" },
  xz: { what: "an xz-compressed file", hint: "decompress it (`unxz`) and upload the disk image inside" },
  zstd: { what: "a zstd-compressed file", hint: "decompress it (`unzstd`) and upload the disk image inside" },
  bzip2: { what: "a bzip2-compressed file", hint: "decompress it (`bunzip2`) and upload the disk image inside" },
};

function startsWith(b: Buffer, sig: string | number[], at = 0): boolean {
  const s = typeof sig === "string" ? Buffer.from(sig, "latin1") : Buffer.from(sig);
  return b.length >= at + s.length && b.subarray(at, at + s.length).equals(s);
}

/** Identifies a format from the first bytes (and the last 512, for VHD footers). Pure. */
export function sniffFormat(head: Buffer, tail: Buffer): "qcow2" | UnsupportedImageFormat | null {
  if (head.length >= 4 && head.readUInt32BE(0) === QCOW2_MAGIC) return head.length >= 8 && head.readUInt32BE(4) === 1 ? "qcow" : "qcow2";
  if (startsWith(head, "KDMV") || startsWith(head, "COWD") || startsWith(head, "# Disk DescriptorFile")) return "vmdk";
  if (head.length >= 68 && head.readUInt32LE(64) === 0xbeda107f) return "vdi";
  if (startsWith(head, "vhdxfile")) return "vhdx";
  if (startsWith(head, "conectix") || startsWith(tail, "conectix")) return "vpc";
  if (startsWith(head, "QED\0")) return "qed";
  if (startsWith(head, [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) return "luks";
  if (startsWith(head, "WithoutFreeSpace") || startsWith(head, "WithouFreSpacExt")) return "parallels";
  if (startsWith(head, [0x1f, 0x8b])) return "gzip";
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "xz";
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return "zstd";
  if (startsWith(head, "BZh") && startsWith(head, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4)) return "bzip2";
  return null;
}

function invalid(path: string, reason: string, cause?: unknown): IaasError {
  return new IaasError("IMAGE_INVALID", `'${path}' is not a usable disk image: ${reason}`, {
    retryable: false,
    hint: "upload a qcow2 or raw disk image; check that the upload finished and the file is not truncated",
    details: { path },
    cause,
  });
}

/**
 * Reads a file's header and says what format it is, without running qemu-img.
 * Throws IaasError IMAGE_INVALID for an empty file or a malformed/truncated qcow2 header.
 */
export async function detectImageFormat(path: string): Promise<DetectedImage> {
  const fh = await open(path, "r");
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalid(path, "it is not a regular file");
    const fileSize = st.size;
    if (fileSize === 0) throw invalid(path, "the file is empty");
    const head = Buffer.alloc(Math.min(HEAD_BYTES, fileSize));
    await fh.read(head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(512, fileSize));
    await fh.read(tail, 0, tail.length, fileSize - tail.length);

    const sniffed = sniffFormat(head, tail);
    if (sniffed === null) {
      if (fileSize % 512 !== 0) throw invalid(path, `no known image header, and its size (${fileSize} bytes) is not a multiple of 512 as a raw disk's is`);
      return { format: "raw", virtualSize: fileSize, fileSize, backingFile: null, hasDataFile: false };
    }
    if (sniffed !== "qcow2") return { format: sniffed, fileSize };

    try {
      const clusterSize = qcow2ClusterSize(head);
      const len = Math.min(clusterSize, MAX_CLUSTER_READ, fileSize);
      let buf = head;
      if (len > head.length) {
        buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, 0);
      }
      return { format: "qcow2", fileSize, ...parseQcow2Header(buf, fileSize) };
    } catch (err) {
      if (err instanceof Qcow2HeaderError) throw invalid(path, err.message, err);
      throw err;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Checks that a file is an image we accept (self-contained qcow2 or raw) before qemu-img touches
 * it, and returns its format and virtual size. Throws a non-retryable IaasError with a hint:
 * IMAGE_HAS_BACKING_FILE, IMAGE_HAS_DATA_FILE, UNSUPPORTED_IMAGE_FORMAT or IMAGE_INVALID.
 */
export async function inspectImage(path: string): Promise<InspectedImage> {
  let d: DetectedImage;
  try {
    d = await detectImageFormat(path);
  } catch (err) {
    if (err instanceof IaasError) throw err;
    throw invalid(path, `it cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
  }
  switch (d.format) {
    case "raw":
      return { format: "raw", virtualSize: d.virtualSize, fileSize: d.fileSize };
    case "qcow2":
      if (d.backingFile !== null) {
        throw new IaasError("IMAGE_HAS_BACKING_FILE", `'${path}' is a qcow2 overlay on '${d.backingFile}'; images must be self-contained`, {
          retryable: false,
          hint: "flatten it before uploading: `qemu-img convert -O qcow2 overlay.qcow2 flat.qcow2`",
          details: { path, backingFile: d.backingFile },
        });
      }
      if (d.hasDataFile) {
        throw new IaasError("IMAGE_HAS_DATA_FILE", `'${path}' keeps its data in an external file${d.dataFile === null ? "" : ` ('${d.dataFile}')`}`, {
          retryable: false,
          hint: "make a self-contained copy before uploading: `qemu-img convert -O qcow2 in.qcow2 out.qcow2`",
          details: { path, dataFile: d.dataFile },
        });
      }
      if (d.encrypted) {
        throw new IaasError("UNSUPPORTED_IMAGE_FORMAT", `'${path}' is an encrypted qcow2 image, which is not supported`, {
          retryable: false,
          hint: "upload an unencrypted copy: `qemu-img convert --object secret,... -O qcow2 in.qcow2 out.qcow2`",
          details: { path, format: "qcow2" },
        });
      }
      if (d.corrupt) throw invalid(path, "qemu marked this qcow2 image corrupt; repair it with `qemu-img check -r all`");
      if (d.unknownIncompatibleFeatures !== 0n) {
        throw new IaasError("UNSUPPORTED_IMAGE_FORMAT", `'${path}' uses qcow2 features this host's QEMU does not know`, {
          retryable: false,
          hint: "convert it with the QEMU that made it: `qemu-img convert -O qcow2 -o compat=1.1 in.qcow2 out.qcow2`",
          details: { path, format: "qcow2", features: d.unknownIncompatibleFeatures.toString(16) },
        });
      }
      return { format: "qcow2", virtualSize: d.virtualSize, fileSize: d.fileSize };
    default: {
      const desc = DESCRIPTIONS[d.format];
      throw new IaasError("UNSUPPORTED_IMAGE_FORMAT", `'${path}' is ${desc.what}; only qcow2 and raw images are supported for now`, {
        retryable: false,
        hint: desc.hint,
        details: { path, format: d.format },
      });
    }
  }
}
