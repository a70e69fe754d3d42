import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { PhaseProgress } from "./phaseProgress.js";

/** sha256 of a file, streamed, reporting bytes read. */
export async function hashFile(path: string, progress?: PhaseProgress, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    progress?.add((chunk as Buffer).length);
  }
  await progress?.finish();
  return hash.digest("hex");
}
