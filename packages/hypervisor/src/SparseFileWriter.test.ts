import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isZeroRange, SparseFileWriter } from "./SparseFileWriter.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sparse-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `content` cut into chunks of the given sizes, in turn. */
function chunked(content: Buffer, sizes: number[]): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < content.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    chunks.push(content.subarray(at, at + n));
    at += n;
  }
  return Readable.from(chunks);
}

describe("SparseFileWriter", () => {
  it("writes the same bytes whatever the chunk boundaries, with holes for zero blocks and the full length", async () => {
    const content = Buffer.alloc(3 * 1024 * 1024 + 777);
    content.fill(0xab, 5, 4100); // data across the first block boundary
    content.fill(0xcd, 1024 * 1024 + 4090, 1024 * 1024 + 4103);
    content[content.length - 778] = 1; // zeros after it to the end
    const dst = join(dir, "out.raw");
    await pipeline(chunked(content, [1000, 4096, 3, 70_000, 65_536]), new SparseFileWriter(dst));
    expect((await readFile(dst)).equals(content)).toBe(true);
    const s = await stat(dst);
    expect(s.size).toBe(content.length);
    expect(s.blocks * 512).toBeLessThanOrEqual(6 * 4096);
  });

  it("writes a file of only zeros as one hole of the right length, and an empty stream as an empty file", async () => {
    const zeros = join(dir, "zeros.raw");
    await pipeline(chunked(Buffer.alloc(10 * 1024 * 1024), [65_536]), new SparseFileWriter(zeros));
    expect((await stat(zeros)).size).toBe(10 * 1024 * 1024);
    expect((await stat(zeros)).blocks).toBe(0);
    const empty = join(dir, "empty.raw");
    await pipeline(Readable.from([]), new SparseFileWriter(empty));
    expect((await stat(empty)).size).toBe(0);
  });

  it("tells zero ranges from others", () => {
    const b = Buffer.alloc(200_000);
    expect(isZeroRange(b, 0, b.length)).toBe(true);
    b[150_000] = 1;
    expect(isZeroRange(b, 0, b.length)).toBe(false);
    expect(isZeroRange(b, 0, 150_000)).toBe(true);
    expect(isZeroRange(b, 150_001, b.length)).toBe(true);
  });
});
