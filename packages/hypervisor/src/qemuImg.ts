import { rm } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { IaasError, type ImageFormat } from "@iaas/contracts";
import { ConvertProgressParser } from "./convertProgressParser.js";
import { formatImageOptions } from "./qemuImgOptions.js";
import { ProcessError, run, type ResourceLimits, type RunOptions, type RunResult } from "./run.js";

/**
 * Formats qemu-img is ever told to use (it is never left to guess): the importable ImageFormat
 * values, plus qed and luks, which it can only be asked to check or inspect.
 */
export type QemuImgFormat = ImageFormat | "qed" | "luks";

const FORMATS: ReadonlySet<string> = new Set<QemuImgFormat>(["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc", "qed", "luks"]);

/** Typed fields of `qemu-img info --output=json`. */
/** An internal snapshot as `qemu-img info` lists it. */
export interface InternalSnapshot {
  id: string;
  name: string;
  /** Bytes of saved VM state (RAM and devices); 0 for a disk-only snapshot. */
  vmStateSize: number;
  dateSec: number;
}

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize: number | null;
  clusterSize: number | null;
  dirty: boolean;
  encrypted: boolean;
  backingFilename: string | null;
  fullBackingFilename: string | null;
  backingFormat: string | null;
  /** qcow2 external data file (`format-specific.data.data-file`). */
  dataFile: string | null;
  /** qcow2 compat level ("0.10" = v2, "1.1" = v3). */
  compat: string | null;
  corrupt: boolean;
  /** Internal snapshots (qcow2). */
  snapshots: InternalSnapshot[];
  /** Persistent dirty bitmaps (qcow2); `in-use` on a closed image means QEMU did not close it cleanly. */
  bitmaps: { name: string; flags: string[] }[];
}

export interface CheckResult {
  /** The check ran and found no corruption (leaked clusters waste space but are harmless). */
  ok: boolean;
  /** False when the format has no consistency check (raw: exit code 63). */
  supported: boolean;
  corruptions: number;
  leaks: number;
  exitCode: number;
}

export interface ConvertOptions {
  /** Called with increasing percentages, ending with 100. */
  onProgress?(percent: number): void;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Compress clusters (`-c`): qcow2 output only. */
  compress?: boolean;
  /** Output format options (`-o k=v,...`), e.g. from exportOptions(); commas in values are escaped. */
  options?: Readonly<Record<string, string>>;
  /** Bytes per second at most (`-r`), so a copy leaves disk bandwidth to running VMs. */
  rateLimit?: number;
}

export interface QemuImgOptions {
  /** Default `qemu-img`. */
  binary?: string;
  /**
   * Limits for `info` and `check`, which read possibly untrusted headers (a crafted image can make
   * qemu-img burn CPU or memory), and for create, resize and createOverlay. Applied with prlimit
   * when installed. null = no limits.
   * Default: 30 CPU seconds, 1 GiB address space.
   */
  probeLimits?: ResourceLimits | null;
  /**
   * Limits for `convert`, which reads the same untrusted images for as long as the copy takes (so
   * no CPU limit by default). null = no limits. Default: 2 GiB address space.
   */
  convertLimits?: ResourceLimits | null;
  /** Timeout for everything but convert. Default 120 s. */
  timeoutMs?: number;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** Reads `qemu-img info --output=json` text into typed fields; throws on text that is not info. */
export function parseImageInfo(json: string): ImageInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new IaasError("QEMU_IMG_FAILED", `qemu-img info printed something that is not JSON: ${json.slice(0, 200)}`, { cause: err });
  }
  const o = record(raw);
  const virtualSize = num(o["virtual-size"]);
  const format = str(o.format);
  if (virtualSize === null || format === null) {
    throw new IaasError("QEMU_IMG_FAILED", `qemu-img info output lacks virtual-size or format: ${json.slice(0, 200)}`);
  }
  const specific = record(record(o["format-specific"]).data);
  return {
    filename: str(o.filename) ?? "",
    format,
    virtualSize,
    actualSize: num(o["actual-size"]),
    clusterSize: num(o["cluster-size"]),
    dirty: o["dirty-flag"] === true,
    encrypted: o.encrypted === true,
    backingFilename: str(o["backing-filename"]),
    fullBackingFilename: str(o["full-backing-filename"]),
    backingFormat: str(o["backing-filename-format"]),
    dataFile: str(specific["data-file"]),
    compat: str(specific.compat),
    corrupt: specific.corrupt === true,
    snapshots: (Array.isArray(o.snapshots) ? o.snapshots : []).map((x: unknown) => {
      const sn = record(x);
      return { id: str(sn.id) ?? "", name: str(sn.name) ?? "", vmStateSize: num(sn["vm-state-size"]) ?? 0, dateSec: num(sn["date-sec"]) ?? 0 };
    }),
    bitmaps: (Array.isArray(specific.bitmaps) ? specific.bitmaps : []).map((x: unknown) => {
      const b = record(x);
      return { name: str(b.name) ?? "", flags: Array.isArray(b.flags) ? b.flags.filter((f): f is string => typeof f === "string") : [] };
    }),
  };
}

function argPath(path: string, what: string): string {
  if (!isAbsolute(path)) {
    throw new IaasError("QEMU_IMG_FAILED", `${what} must be an absolute path, got '${path}'`, { retryable: false });
  }
  if (/[\0\n\r]/.test(path)) throw new IaasError("QEMU_IMG_FAILED", `${what} contains control characters`, { retryable: false });
  return path;
}

function argFormat(format: string, what: string): string {
  if (!FORMATS.has(format)) throw new IaasError("QEMU_IMG_FAILED", `${what} '${format}' is not a known image format`, { retryable: false });
  return format;
}

function argSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new IaasError("QEMU_IMG_FAILED", `size must be a positive whole number of bytes, got ${bytes}`, { retryable: false });
  }
  return String(bytes);
}

/** qemu-img, run through run() with `-f FORMAT` always given. Errors are IaasError QEMU_IMG_FAILED. */
export class QemuImg {
  readonly binary: string;
  private readonly probeLimits: ResourceLimits | undefined;
  private readonly convertLimits: ResourceLimits | undefined;
  private readonly timeoutMs: number;

  constructor(opts: QemuImgOptions = {}) {
    this.binary = opts.binary ?? "qemu-img";
    const probe = opts.probeLimits === undefined ? { cpuSeconds: 30, addressSpaceBytes: 2 ** 30 } : opts.probeLimits;
    this.probeLimits = probe ?? undefined;
    const convert = opts.convertLimits === undefined ? { addressSpaceBytes: 2 * 2 ** 30 } : opts.convertLimits;
    this.convertLimits = convert ?? undefined;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  /** `qemu-img info -f FORMAT --output=json [-U] PATH`. `allowShared` reads an image a running VM holds. */
  async info(path: string, format: QemuImgFormat, opts: { allowShared?: boolean; signal?: AbortSignal } = {}): Promise<ImageInfo> {
    const args = ["info", "-f", argFormat(format, "format"), "--output=json"];
    if (opts.allowShared === true) args.push("-U");
    args.push(argPath(path, "path"));
    const r = await this.exec(args, { limits: this.probeLimits, signal: opts.signal });
    return parseImageInfo(r.stdout);
  }

  // Every call runs under limits: create, resize and createOverlay under the probe limits (they
  // open at most our own images, briefly), convert under the convert limits.

  /** `qemu-img create -f FORMAT PATH SIZE`: a new empty image. */
  async create(path: string, format: "qcow2" | "raw", sizeBytes: number): Promise<void> {
    await this.exec(["create", "-f", argFormat(format, "format"), argPath(path, "path"), argSize(sizeBytes)], { limits: this.probeLimits });
  }

  /**
   * `qemu-img create -f qcow2 -b BACKING -F FMT OVERLAY [SIZE]`: a copy-on-write disk on an image.
   * The backing path is stored in the overlay as given, so it must be absolute.
   */
  async createOverlay(overlay: string, backing: string, backingFormat: QemuImgFormat, sizeBytes?: number): Promise<void> {
    const args = ["create", "-f", "qcow2", "-b", argPath(backing, "backing"), "-F", argFormat(backingFormat, "backingFormat")];
    args.push(argPath(overlay, "overlay"));
    if (sizeBytes !== undefined) args.push(argSize(sizeBytes));
    await this.exec(args, { limits: this.probeLimits });
  }

  /**
   * `qemu-img create -f qcow2 -b PARENT -F qcow2 PATH SIZE` with PARENT a file name in PATH's own
   * directory, stored relative so a directory of such files (a backup chain) can move as a whole.
   */
  async createOnSibling(path: string, parentFileName: string, sizeBytes: number): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(parentFileName)) {
      throw new IaasError("QEMU_IMG_FAILED", `'${parentFileName}' is not a plain file name`, { retryable: false });
    }
    await this.exec(["create", "-f", "qcow2", "-b", parentFileName, "-F", "qcow2", argPath(path, "path"), argSize(sizeBytes)], { limits: this.probeLimits });
  }

  /**
   * A new overlay DST on BACKING holding what the qcow2 chain ending in SRC reads as: DST is made
   * on SRC, then `qemu-img rebase` (safe mode) moves it onto BACKING, writing into DST only the
   * clusters where the two differ (zeros included). BACKING is only read. `convert -B` cannot do
   * this: it copies the source's top layer alone, taking its backing chain to equal the new base.
   */
  async overlayFromChain(src: string, dst: string, backing: string, backingFormat: QemuImgFormat, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.exec(["create", "-f", "qcow2", "-b", argPath(src, "src"), "-F", "qcow2", argPath(dst, "dst")], { limits: this.probeLimits });
    try {
      await this.exec(["rebase", "-f", "qcow2", "-b", argPath(backing, "backing"), "-F", argFormat(backingFormat, "backingFormat"), argPath(dst, "dst")], {
        limits: this.convertLimits,
        timeoutMs: 0,
        signal: opts.signal,
      });
    } catch (err) {
      await rm(dst, { force: true });
      throw err;
    }
  }

  /**
   * `qemu-img rebase -u -f qcow2 -b BACKING -F FMT PATH`: changes only the backing file name an
   * overlay records (no data is read or written), for an overlay moved to a host where the same
   * image has another path. BACKING must hold the same content as the one it replaces.
   */
  async repoint(path: string, backing: string, backingFormat: QemuImgFormat): Promise<void> {
    await this.exec(["rebase", "-u", "-f", "qcow2", "-b", argPath(backing, "backing"), "-F", argFormat(backingFormat, "backingFormat"), argPath(path, "path")], { limits: this.probeLimits });
  }

  /** `qemu-img bitmap --add|--clear|--remove PATH NAME` on a qcow2 no QEMU holds (`add` makes it persistent and enabled). */
  async bitmap(op: "add" | "clear" | "remove", path: string, name: string): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) throw new IaasError("QEMU_IMG_FAILED", `bitmap name '${name}' is not safe`, { retryable: false });
    await this.exec(["bitmap", `--${op}`, "-f", "qcow2", argPath(path, "path"), name], { limits: this.probeLimits });
  }

  /**
   * `qemu-img snapshot --image-opts -c|-a|-d NAME driver=qcow2,file.filename=PATH`: create, apply (revert to) or delete an internal
   * snapshot of an image no QEMU holds.
   */
  async snapshot(op: "create" | "apply" | "delete", path: string, name: string): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
      throw new IaasError("QEMU_IMG_FAILED", `snapshot name '${name}' is not a safe tag`, { retryable: false });
    }
    const flag = { create: "-c", apply: "-a", delete: "-d" }[op];
    // `qemu-img snapshot` has no -f: the format is pinned with --image-opts instead.
    const image = `driver=qcow2,file.filename=${argPath(path, "path").replaceAll(",", ",,")}`;
    await this.exec(["snapshot", "--image-opts", flag, name, image], { limits: this.probeLimits });
  }

  /**
   * `qemu-img convert -f qcow2 [-U] [-l snapshot.name=S] -O qcow2 -B BACKING -F FMT SRC DST`: a new
   * overlay on the same backing image holding what SRC (or its snapshot S) has on top of it, so a
   * clone costs what the VM wrote, not the whole image. `shared` reads a disk a running VM holds.
   */
  async cloneOverlay(src: string, dst: string, backing: string, backingFormat: QemuImgFormat, opts: { snapshot?: string; shared?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const args = ["convert", "-f", "qcow2"];
    if (opts.shared === true) args.push("-U");
    if (opts.snapshot !== undefined) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(opts.snapshot)) throw new IaasError("QEMU_IMG_FAILED", `snapshot name '${opts.snapshot}' is not a safe tag`, { retryable: false });
      args.push("-l", `snapshot.name=${opts.snapshot}`);
    }
    args.push("-O", "qcow2", "-B", argPath(backing, "backing"), "-F", argFormat(backingFormat, "backingFormat"), argPath(src, "src"), argPath(dst, "dst"));
    await this.exec(args, { limits: this.convertLimits, timeoutMs: 0, signal: opts.signal });
  }

  /** `qemu-img resize -f FORMAT [--shrink] PATH SIZE`. */
  async resize(path: string, format: QemuImgFormat, sizeBytes: number, opts: { shrink?: boolean } = {}): Promise<void> {
    const args = ["resize", "-f", argFormat(format, "format")];
    if (opts.shrink === true) args.push("--shrink");
    args.push(argPath(path, "path"), argSize(sizeBytes));
    await this.exec(args, { limits: this.probeLimits });
  }

  /**
   * `qemu-img convert -p -f SRC_FMT -O DST_FMT [-c] [-o OPTS] SRC DST`, reporting progress from
   * `-p`, under the convert limits. On failure or abort the partly written destination is removed.
   */
  async convert(src: string, srcFormat: QemuImgFormat, dst: string, dstFormat: QemuImgFormat, opts: ConvertOptions = {}): Promise<void> {
    const args = ["convert", "-p", "-f", argFormat(srcFormat, "srcFormat"), "-O", argFormat(dstFormat, "dstFormat")];
    if (opts.compress === true) {
      if (dstFormat !== "qcow2") {
        throw new IaasError("QEMU_IMG_FAILED", `compression (-c) is only supported for qcow2 output, not ${dstFormat}`, {
          retryable: false,
          hint: "export as qcow2 to compress; vmdk exports are already compressed (subformat=streamOptimized)",
        });
      }
      args.push("-c");
    }
    const o = formatImageOptions(opts.options ?? {});
    if (o !== null) args.push("-o", o);
    if (opts.rateLimit !== undefined) args.push("-r", argSize(opts.rateLimit));
    args.push(argPath(src, "src"), argPath(dst, "dst"));
    const parser = new ConvertProgressParser();
    try {
      await this.exec(args, {
        limits: this.convertLimits,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs ?? 0,
        onStdout: (chunk) => {
          for (const p of parser.push(chunk)) opts.onProgress?.(p);
        },
      });
    } catch (err) {
      await rm(dst, { force: true });
      throw err;
    }
    if (parser.percent !== 100) opts.onProgress?.(100);
  }

  /**
   * `qemu-img check -f FORMAT --output=json PATH`: qcow2, vdi, vhdx, vmdk and qed are checked;
   * raw and vpc have no check (`supported: false`, exit 63).
   */
  async check(path: string, format: QemuImgFormat, opts: { signal?: AbortSignal } = {}): Promise<CheckResult> {
    const args = ["check", "-f", argFormat(format, "format"), "--output=json", argPath(path, "path")];
    // 2 = corruptions found, 3 = leaks only, 63 = format cannot be checked; 1 (check failed) throws.
    const r = await this.exec(args, { allowExitCodes: [2, 3, 63], limits: this.probeLimits, signal: opts.signal });
    if (r.code === 63) return { ok: false, supported: false, corruptions: 0, leaks: 0, exitCode: 63 };
    let o: Record<string, unknown> = {};
    try {
      o = record(JSON.parse(r.stdout));
    } catch {
      // A check that found problems may print text around the JSON; the exit code still tells.
    }
    const corruptions = num(o.corruptions) ?? (r.code === 2 ? 1 : 0);
    const leaks = num(o.leaks) ?? (r.code === 3 ? 1 : 0);
    return { ok: r.code !== 2 && corruptions === 0, supported: true, corruptions, leaks, exitCode: r.code };
  }

  private async exec(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const argv = [this.binary, ...args];
    const runOpts: RunOptions = { ...opts };
    // glibc reserves 64 MiB of address space per thread arena, which would make an address-space
    // limit measure thread count rather than memory use; two arenas are plenty for qemu-img.
    if (opts.limits !== undefined) runOpts.env = { ...process.env, MALLOC_ARENA_MAX: "2" };
    // timeoutMs 0 means "no timeout" (convert of a large image).
    if (opts.timeoutMs === 0) delete runOpts.timeoutMs;
    else runOpts.timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    try {
      return await run(argv, runOpts);
    } catch (err) {
      throw qemuImgError(args[0] ?? "", err);
    }
  }
}

function qemuImgError(sub: string, err: unknown): IaasError {
  if (!(err instanceof ProcessError)) {
    return new IaasError("QEMU_IMG_FAILED", `qemu-img ${sub} failed: ${String(err)}`, { cause: err });
  }
  const retryable = err.reason === "timeout" || err.reason === "spawn";
  const hint =
    err.reason === "spawn"
      ? "install qemu-utils (qemu-img) on this host or set the qemu-img binary path"
      : err.reason === "signal"
        ? "qemu-img was killed, possibly by its CPU or memory limit; the image may be malformed"
        : null;
  return new IaasError("QEMU_IMG_FAILED", `qemu-img ${sub} failed: ${err.message}`, {
    retryable,
    hint,
    cause: err,
    details: { argv: err.argv, exitCode: err.exitCode, signal: err.exitSignal, reason: err.reason },
  });
}
