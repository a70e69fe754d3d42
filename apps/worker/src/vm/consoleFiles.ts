import { open, rename, rm } from "node:fs/promises";
import { ProcessError, run } from "@iaas/hypervisor";

/** What cutting a file's head did: removed the bytes in place, or found a file system that cannot. */
export type CollapseOutcome = "collapsed" | "unsupported";

/**
 * Removes the first `bytes` of `file` in place: the rest moves to offset 0 and the file shrinks
 * (`fallocate --collapse-range`, FALLOC_FL_COLLAPSE_RANGE: ext4 and XFS; `bytes` a multiple of the
 * file system's block size and less than the file's size). The kernel does it under the inode lock,
 * so a writer appending (O_APPEND) meanwhile loses nothing: its bytes land at the new end.
 * "unsupported" on a file system without it (tmpfs, btrfs, NFS); other failures throw.
 */
export async function collapseHead(file: string, bytes: number, binary = "fallocate"): Promise<CollapseOutcome> {
  try {
    await run([binary, "--collapse-range", "--offset", "0", "--length", String(bytes), file], { env: { ...process.env, LC_ALL: "C" }, timeoutMs: 30_000 });
    return "collapsed";
  } catch (err) {
    if (err instanceof ProcessError && err.reason === "exit" && /operation not supported/i.test(err.stderrTail)) return "unsupported";
    throw err;
  }
}

/** Up to `length` bytes of `file` from `position` (fewer at its end). */
export async function readRange(file: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Replaces `dest` with `file[from, to)`, whole or not at all (written beside it, then renamed). */
export async function copyRange(file: string, dest: string, from: number, to: number): Promise<void> {
  const tmp = `${dest}.tmp`;
  const src = await open(file, "r");
  try {
    const out = await open(tmp, "w");
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (let at = from; at < to; ) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, to - at), at);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead);
        at += bytesRead;
      }
    } finally {
      await out.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await src.close();
  }
  await rename(tmp, dest);
}
