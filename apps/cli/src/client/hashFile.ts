import { createReadStream } from "node:fs";
import type { Hash } from "node:crypto";

/**
 * Feeds the bytes of `file` (from `start`, to its end or `end` inclusive) into `hash`, streamed;
 * `onBytes` gets the count hashed so far.
 */
export async function hashFile(file: string, hash: Hash, options: { start?: number; end?: number; onBytes?: (n: number) => void } = {}): Promise<void> {
  const stream = createReadStream(file, { start: options.start, end: options.end, highWaterMark: 1024 * 1024 });
  let n = 0;
  for await (const chunk of stream) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError(`expected bytes reading ${file}`);
    hash.update(chunk);
    n += chunk.byteLength;
    options.onBytes?.(n);
  }
}

/** Yields the bytes of `file` from `start` to `end` (inclusive), 1 MiB at a time; `onPosition` gets the offset reached. */
export async function* fileBytes(file: string, start: number, end: number, onPosition: (position: number) => void): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(file, { start, end, highWaterMark: 1024 * 1024 });
  let position = start;
  try {
    for await (const chunk of stream) {
      if (!(chunk instanceof Uint8Array)) throw new TypeError(`expected bytes reading ${file}`);
      yield chunk;
      position += chunk.byteLength;
      onPosition(position);
    }
  } finally {
    stream.destroy();
  }
}
