import { formatSize, IaasError, ImageFormat } from "@iaas/contracts";
import { detectImageFormat, invalidImage, type DetectedImage, type UnsupportedImageFormat } from "./imageFormat.js";
import { VDI_TYPE_DIFF, VDI_TYPE_FIXED, VDI_TYPE_NORMAL, VDI_VERSION_1_1 } from "./formats/vdi.js";
import type { VmdkDescriptor } from "./formats/vmdk.js";
import { VPC_TYPE_DIFF, VPC_TYPE_DYNAMIC, VPC_TYPE_FIXED } from "./formats/vpc.js";

/** An image that may be handed to qemu-img with `-f format`: self-contained, within limits. */
export interface InspectedImage {
  format: ImageFormat;
  virtualSize: number;
  fileSize: number;
}

export interface InspectOptions {
  /** The format the uploader claimed; a header saying otherwise is refused (FORMAT_MISMATCH). */
  declaredFormat?: ImageFormat;
  /** Largest virtual size accepted, in bytes (IMAGE_TOO_LARGE above it). */
  maxVirtualSize?: number;
}

const CONVERT_HINT = (fmt: string): string =>
  `convert it to qcow2 first, e.g. \`qemu-img convert -f ${fmt} -O qcow2 in.${fmt} out.qcow2\`, and upload the result`;

const DESCRIPTIONS: Record<UnsupportedImageFormat, { what: string; hint: string }> = {
  qed: { what: "a QED image", hint: CONVERT_HINT("qed") },
  luks: { what: "a LUKS-encrypted image", hint: "decrypt it and upload a qcow2 or raw image" },
  qcow: { what: "a qcow version 1 image", hint: CONVERT_HINT("qcow") },
  parallels: { what: "a Parallels image", hint: CONVERT_HINT("parallels") },
  gzip: { what: "a gzip-compressed file", hint: "decompress it first (`gunzip`), or let the import decompress it, and inspect the disk image inside" },
  xz: { what: "an xz-compressed file", hint: "decompress it first (`unxz`), or let the import decompress it, and inspect the disk image inside" },
  zstd: { what: "a zstd-compressed file", hint: "decompress it (`unzstd`) and upload the disk image inside" },
  bzip2: { what: "a bzip2-compressed file", hint: "decompress it (`bunzip2`) and upload the disk image inside" },
};

const FLATTEN_HINT = (fmt: string): string =>
  `upload a self-contained image: on the machine that has the parent, run \`qemu-img convert -f ${fmt} -O qcow2 disk.${fmt} flat.qcow2\` and upload flat.qcow2`;

function isImageFormat(format: string): format is ImageFormat {
  return (ImageFormat.options as readonly string[]).includes(format);
}

function notAnImage(path: string, format: UnsupportedImageFormat): IaasError {
  const desc = DESCRIPTIONS[format];
  return unsupported(path, format, `is ${desc.what}, which is not a supported disk image`, desc.hint);
}

function unsupported(path: string, format: string, message: string, hint: string): IaasError {
  return new IaasError("UNSUPPORTED_IMAGE_FORMAT", `'${path}' ${message}`, { retryable: false, hint, details: { path, format } });
}

function backing(path: string, format: string, message: string, backingFile: string | null): IaasError {
  return new IaasError("IMAGE_HAS_BACKING_FILE", `'${path}' ${message}; images must be self-contained`, {
    retryable: false,
    hint: FLATTEN_HINT(format),
    details: { path, format, backingFile },
  });
}

function extents(path: string, message: string, d: VmdkDescriptor): IaasError {
  const files = d.extents.map((e) => e.fileName).filter((f): f is string => f !== null);
  return new IaasError("IMAGE_HAS_EXTENTS", `'${path}' ${message}${files.length > 0 ? ` (it names ${files.map((f) => `'${f}'`).join(", ")})` : ""}`, {
    retryable: false,
    hint:
      "VMDK descriptors that reference other files are refused: make a single-file copy on the machine that has the extents, " +
      "e.g. `qemu-img convert -f vmdk -O vmdk -o subformat=streamOptimized disk.vmdk single.vmdk` (or `-O qcow2`), and upload that",
    details: { path, format: "vmdk", createType: d.createType, extents: d.extents.map((e) => e.line) },
  });
}

function mismatch(path: string, declared: ImageFormat, detected: ImageFormat): IaasError {
  const what = detected === "raw" ? `has no ${declared} header (it reads as a raw disk)` : `is a ${detected} image by its header`;
  return new IaasError("FORMAT_MISMATCH", `'${path}' was declared ${declared} but ${what}`, {
    retryable: false,
    hint: `import it as ${detected} (or leave the format out so it is detected), or check that the right file was uploaded`,
    details: { path, declaredFormat: declared, detectedFormat: detected },
  });
}

const SINGLE_FILE_VMDK: ReadonlySet<string> = new Set(["monolithicSparse", "streamOptimized"]);

/** Refuses a VMDK unless it is one sparse file whose embedded descriptor names only itself. */
function checkVmdk(path: string, d: Extract<DetectedImage, { format: "vmdk" }>): number {
  if (d.kind === "descriptor") {
    const what = d.embedded ? "is a VMDK whose header has capacity 0, so its embedded text is read as a descriptor file" : "is a VMDK descriptor file";
    throw extents(path, `${what}: its data lives in other files`, d.descriptor);
  }
  if (d.kind === "vmfsSparse") {
    throw unsupported(path, "vmdk", "is an ESX vmfsSparse (COWD) extent, which only works with its descriptor and parent", CONVERT_HINT("vmdk"));
  }
  if (d.hasParent) throw backing(path, "vmdk", `is a VMDK delta disk on '${d.parentFileNameHint ?? "?"}'`, d.parentFileNameHint);
  if (d.version < 1 || d.version > 3) throw unsupported(path, "vmdk", `is a VMDK sparse file of version ${d.version}, which QEMU cannot read`, CONVERT_HINT("vmdk"));
  const desc = d.descriptor;
  if (desc === null) throw invalidImage(path, "the VMDK sparse header points at no embedded descriptor");
  if (desc.createType === null) throw invalidImage(path, "the embedded VMDK descriptor has no createType");
  if (!SINGLE_FILE_VMDK.has(desc.createType)) {
    throw extents(path, `is a VMDK of createType '${desc.createType}'; only single-file monolithicSparse and streamOptimized VMDKs are accepted`, desc);
  }
  const [only, ...more] = desc.extents;
  if (only === undefined || more.length > 0) throw extents(path, `has an embedded descriptor with ${desc.extents.length} extents instead of exactly one`, desc);
  if (only.type !== "SPARSE") throw extents(path, `has an embedded descriptor whose extent is of type ${only.type}, not SPARSE`, desc);
  const name = only.fileName;
  if (name === null || name === "" || name === "." || name === ".." || /[/\\]/.test(name)) {
    throw extents(path, "has an embedded descriptor whose extent points at another file, not at itself", desc);
  }
  return d.virtualSize;
}

/** Refuses what the format-specific headers say cannot be imported; returns the virtual size. */
function checkDetected(path: string, d: DetectedImage): number {
  switch (d.format) {
    case "raw":
      return d.virtualSize;
    case "qcow2":
      if (d.backingFile !== null) {
        throw new IaasError("IMAGE_HAS_BACKING_FILE", `'${path}' is a qcow2 overlay on '${d.backingFile}'; images must be self-contained`, {
          retryable: false,
          hint: "flatten it before uploading: `qemu-img convert -O qcow2 overlay.qcow2 flat.qcow2`",
          details: { path, format: "qcow2", backingFile: d.backingFile },
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
        throw unsupported(path, "qcow2", "is an encrypted qcow2 image, which is not supported", "upload an unencrypted copy: `qemu-img convert --object secret,... -O qcow2 in.qcow2 out.qcow2`");
      }
      if (d.corrupt) throw invalidImage(path, "qemu marked this qcow2 image corrupt; repair it with `qemu-img check -r all`");
      if (d.unknownIncompatibleFeatures !== 0n) {
        throw unsupported(path, "qcow2", "uses qcow2 features this host's QEMU does not know", "convert it with the QEMU that made it: `qemu-img convert -O qcow2 -o compat=1.1 in.qcow2 out.qcow2`");
      }
      return d.virtualSize;
    case "vmdk":
      return checkVmdk(path, d);
    case "vdi":
      if (d.imageType === VDI_TYPE_DIFF || d.hasParent) throw backing(path, "vdi", "is a differencing VDI image (it has a parent)", null);
      if (d.version !== VDI_VERSION_1_1) throw unsupported(path, "vdi", `is a VDI image of version ${d.version >>> 16}.${d.version & 0xffff}; only 1.1 is supported`, CONVERT_HINT("vdi"));
      if (d.imageType !== VDI_TYPE_NORMAL && d.imageType !== VDI_TYPE_FIXED) throw unsupported(path, "vdi", `is a VDI image of type ${d.imageType}; only normal and fixed images are supported`, CONVERT_HINT("vdi"));
      if (d.sectorSize !== 512) throw invalidImage(path, `the VDI sector size is ${d.sectorSize}, not 512`);
      return d.virtualSize;
    case "vhdx":
      if (d.hasParent || d.hasParentLocator) throw backing(path, "vhdx", "is a differencing VHDX disk (it has a parent)", null);
      if (d.unknownRequired.length > 0) throw unsupported(path, "vhdx", `uses required VHDX structures this host does not know (${d.unknownRequired.join(", ")})`, CONVERT_HINT("vhdx"));
      return d.virtualSize;
    case "vpc":
      if (d.diskType === VPC_TYPE_DIFF || d.dynamicHeaderNamesParent) throw backing(path, "vpc", "is a differencing VHD disk (it has a parent)", null);
      if (d.diskType !== VPC_TYPE_FIXED && d.diskType !== VPC_TYPE_DYNAMIC) throw unsupported(path, "vpc", `is a VHD of disk type ${d.diskType}; only fixed (2) and dynamic (3) disks are supported`, CONVERT_HINT("vpc"));
      if (d.footerAt === "end" && d.diskType !== VPC_TYPE_FIXED) throw invalidImage(path, "the VHD is dynamic but lacks the footer copy at its start");
      return d.virtualSize;
    default:
      throw notAnImage(path, d.format);
  }
}

/**
 * Checks, with our own header parsers and before any qemu-img call opens it, that a file is an
 * image we accept: raw, self-contained qcow2, single-file sparse VMDK (monolithicSparse or
 * streamOptimized), VDI, VHDX or VHD without a parent. Returns its format and virtual size.
 * Throws a non-retryable IaasError with a hint: UNSUPPORTED_IMAGE_FORMAT, FORMAT_MISMATCH,
 * IMAGE_HAS_EXTENTS, IMAGE_HAS_BACKING_FILE, IMAGE_HAS_DATA_FILE, IMAGE_TOO_LARGE or IMAGE_INVALID.
 */
export async function inspectImage(path: string, opts: InspectOptions = {}): Promise<InspectedImage> {
  const max = opts.maxVirtualSize;
  if (max !== undefined && (!Number.isSafeInteger(max) || max <= 0)) throw new RangeError(`maxVirtualSize must be a positive integer, got ${max}`);
  let d: DetectedImage;
  try {
    d = await detectImageFormat(path);
  } catch (err) {
    if (err instanceof IaasError) throw err;
    throw invalidImage(path, `it cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const format = d.format;
  if (!isImageFormat(format)) throw notAnImage(path, format);
  if (opts.declaredFormat !== undefined && opts.declaredFormat !== format) throw mismatch(path, opts.declaredFormat, format);
  const virtualSize = checkDetected(path, d);
  if (max !== undefined && virtualSize > max) {
    throw new IaasError("IMAGE_TOO_LARGE", `'${path}' has a virtual size of ${formatSize(virtualSize)} (${virtualSize} bytes), more than the ${formatSize(max)} (${max} bytes) allowed`, {
      retryable: false,
      hint: "shrink the disk before uploading (`qemu-img resize --shrink`, after shrinking its filesystems), or ask an operator to raise the image size limit",
      details: { path, format, virtualSize, maxVirtualSize: max },
    });
  }
  return { format, virtualSize, fileSize: d.fileSize };
}
