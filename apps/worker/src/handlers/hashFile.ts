import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import type { PhaseProgress } from "./phaseProgress.js";

const BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * sha256 of a file, read into one reused buffer (a stream would allocate a buffer per chunk and
 * spend a third of the time in allocation and garbage collection).
 */
export async function hashFile(path: string, progress?: PhaseProgress, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  const buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  const fh = await open(path, "r");
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buffer, 0, BUFFER_BYTES, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      progress?.add(bytesRead);
    }
  } finally {
    await fh.close();
  }
  await progress?.finish();
  return hash.digest("hex");
}
