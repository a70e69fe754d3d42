import { open, stat, type FileHandle } from "node:fs/promises";
import type { Redis } from "ioredis";
import { consoleStreamKey } from "@iaas/contracts";
import { collapseHead, copyRange, readRange } from "./consoleFiles.js";

const CHUNK = 16 * 1024;
/** Stream entries kept per VM (each at most 16 KiB): roughly the last 1 MiB of console output. */
const MAX_ENTRIES = 64;
/** Default IAAS_CONSOLE_LOG_MAX_BYTES. */
export const DEFAULT_CONSOLE_LOG_MAX_BYTES = 1024 * 1024;
/** Bytes compared to tell whether a cut that a crash interrupted happened. */
const FINGERPRINT_BYTES = 64;

export interface ConsoleTailerOptions {
  /**
   * `console.log` is rotated once more than this has been copied from it: its head is cut off and
   * the last half of what goes is kept in `console.log.1`. 0: never. Default 1 MiB.
   */
  maxBytes?: number;
  /** Told when a file system cannot cut a file's head and rotation truncates instead (a pino logger). */
  log?: { warn(details: object, message: string): void };
  /** util-linux `fallocate`. */
  fallocateBinary?: string;
}

/** A cut of the console file's head recorded before it is made, so a worker that dies midway can tell. */
interface PendingCut {
  /** Bytes cut from the head. */
  cut: number;
  /** The read offset before the cut (all of it already in the stream). */
  before: number;
  /** The file's first bytes before the cut, and the bytes right after the cut (its first bytes after), base64. */
  head: string;
  next: string;
}

/**
 * Copies each VM's serial console file into a capped Redis stream, from which the API serves
 * `iaas vm console` for VMs on any host. The read offset lives in Redis too, so a restarted
 * worker continues where it stopped instead of sending everything again.
 *
 * Rotation: QEMU appends to the file (O_APPEND). Once more than `maxBytes` has been copied, the
 * copied head of the file is cut off in place (collapse-range: lossless while QEMU writes) and the
 * offset moves back by as much, so nothing is lost or sent twice; the last `maxBytes / 2` of what
 * was cut is kept in `console.log.1`. On a file system that cannot collapse a range, the file is
 * copied to the end and truncated instead, which loses what QEMU writes in between.
 */
export class ConsoleTailer {
  private readonly maxBytes: number;
  private readonly warned = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly options: ConsoleTailerOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_CONSOLE_LOG_MAX_BYTES;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 0) throw new RangeError(`maxBytes must be 0 or a positive integer, got ${this.maxBytes}`);
  }

  private offsetKey(vmId: string): string {
    return `${consoleStreamKey(this.prefix, vmId)}:offset`;
  }

  private cutKey(vmId: string): string {
    return `${consoleStreamKey(this.prefix, vmId)}:cut`;
  }

  /** Starts a VM's console afresh (the file is removed before QEMU starts). */
  async reset(vmId: string): Promise<void> {
    await this.redis.multi().del(consoleStreamKey(this.prefix, vmId), this.cutKey(vmId)).set(this.offsetKey(vmId), "0").exec();
  }

  async forget(vmId: string): Promise<void> {
    await this.redis.del(consoleStreamKey(this.prefix, vmId), this.offsetKey(vmId), this.cutKey(vmId));
  }

  /** Sends what the file has gained since the last call, then rotates it when it has grown past `maxBytes`. */
  async pump(vmId: string, file: string): Promise<void> {
    if ((await sizeOf(file)) === null) return;
    const [offsetText, pendingText] = await this.redis.mget(this.offsetKey(vmId), this.cutKey(vmId));
    let offset = Number(offsetText ?? 0);
    if (pendingText) offset = await this.finishCut(vmId, file, JSON.parse(pendingText) as PendingCut, offset);
    const size = await sizeOf(file);
    if (size === null) return;
    if (size < offset) offset = 0;
    if (size > offset) {
      const fh = await open(file, "r");
      try {
        offset = await this.send(vmId, fh, offset, size);
      } finally {
        await fh.close();
      }
    }
    if (this.maxBytes > 0 && offset > this.maxBytes) await this.rotate(vmId, file, offset);
  }

  /** Sends `[offset, size)` of the open file in chunks, recording the offset with each; the new offset. */
  private async send(vmId: string, fh: FileHandle, offset: number, size: number): Promise<number> {
    const key = consoleStreamKey(this.prefix, vmId);
    while (offset < size) {
      const buf = Buffer.alloc(Math.min(CHUNK, size - offset));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      await this.redis
        .multi()
        .xadd(key, "MAXLEN", "~", String(MAX_ENTRIES), "*", "data", buf.subarray(0, bytesRead).toString("utf8"))
        .set(this.offsetKey(vmId), String(offset))
        .exec();
    }
    return offset;
  }

  /** Cuts the copied head of the file (all of `[0, sent)` but a partial block), keeping its tail in `.1`. */
  private async rotate(vmId: string, file: string, sent: number): Promise<void> {
    const st = await stat(file);
    const block = st.blksize > 0 ? st.blksize : 4096;
    // Whole blocks, and never the file's last byte (collapse-range refuses to reach the end).
    const cut = Math.floor(Math.min(sent, st.size - 1) / block) * block;
    if (cut <= 0) return;
    await copyRange(file, `${file}.1`, Math.max(0, cut - Math.floor(this.maxBytes / 2)), cut);
    const pending: PendingCut = {
      cut,
      before: sent,
      head: (await readRange(file, 0, FINGERPRINT_BYTES)).toString("base64"),
      next: (await readRange(file, cut, FINGERPRINT_BYTES)).toString("base64"),
    };
    await this.redis.set(this.cutKey(vmId), JSON.stringify(pending));
    const outcome = await collapseHead(file, cut, this.options.fallocateBinary);
    if (outcome === "collapsed") {
      await this.redis.multi().set(this.offsetKey(vmId), String(sent - cut)).del(this.cutKey(vmId)).exec();
      return;
    }
    await this.redis.del(this.cutKey(vmId));
    await this.truncate(vmId, file, sent);
  }

  /**
   * Rotation where the head cannot be cut in place: everything is sent, the last half kept in
   * `.1`, and the file truncated. QEMU's output between the last read and the truncate is lost.
   */
  private async truncate(vmId: string, file: string, sent: number): Promise<void> {
    const fh = await open(file, "r+");
    try {
      let offset = sent;
      // Catch up to the end (a few rounds at most, for a guest that writes fast), then cut.
      for (let round = 0; round < 3; round++) {
        const size = (await fh.stat()).size;
        if (size <= offset) break;
        offset = await this.send(vmId, fh, offset, size);
      }
      await copyRange(file, `${file}.1`, Math.max(0, offset - Math.floor(this.maxBytes / 2)), offset);
      await fh.truncate(0);
      await this.redis.set(this.offsetKey(vmId), "0");
    } finally {
      await fh.close();
    }
    if (!this.warned.has(vmId)) {
      this.warned.add(vmId);
      this.options.log?.warn(
        { vmId, file },
        "console log rotated by truncating it: its file system cannot cut a file's head in place (FALLOC_FL_COLLAPSE_RANGE; ext4 and XFS can), so console output written during a rotation may be lost; put IAAS_DATA_DIR on ext4 or XFS",
      );
    }
  }

  /**
   * A worker died between recording a cut and recording the offset after it: tells from the
   * file whether the cut happened (the file is shorter than what was sent, or begins with the
   * bytes that followed the cut), makes it if not, and returns the offset after it. When the file
   * begins with both (repetitive output), the cut is taken as made: at worst some output is sent
   * twice, never lost.
   */
  private async finishCut(vmId: string, file: string, pending: PendingCut, offset: number): Promise<number> {
    const size = (await sizeOf(file)) ?? 0;
    const head = Buffer.from(pending.head, "base64");
    const next = Buffer.from(pending.next, "base64");
    const now = await readRange(file, 0, FINGERPRINT_BYTES);
    const startsWith = (b: Buffer) => b.length > 0 && now.subarray(0, b.length).equals(b);
    const made = size < pending.before || startsWith(next);
    if (!made && !startsWith(head)) {
      // Neither the file before nor after the cut: not the file the cut was for.
      await this.redis.del(this.cutKey(vmId));
      return offset;
    }
    if (!made && (await collapseHead(file, pending.cut, this.options.fallocateBinary)) === "unsupported") {
      await this.redis.del(this.cutKey(vmId));
      return offset;
    }
    const after = pending.before - pending.cut;
    await this.redis.multi().set(this.offsetKey(vmId), String(after)).del(this.cutKey(vmId)).exec();
    return after;
  }
}

async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
