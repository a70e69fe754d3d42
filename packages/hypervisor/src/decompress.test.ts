import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { decompress, type CompressionKind } from "./decompress.js";
import { run } from "./run.js";

// gzip through node:zlib, xz through the real `xz` binary.

let dir: string;
let raw: string;
let rawSha: string;
const compressed: Record<CompressionKind, string> = { gzip: "", xz: "" };
let bombs: Record<CompressionKind, string>;

const sha = async (p: string): Promise<string> => createHash("sha256").update(await readFile(p)).digest("hex");

/** 6 MiB that compresses, but not to nothing: a counter pattern. */
function pattern(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((i * 2654435761) >>> 8, i);
  return b;
}

async function xzFile(src: string, dst: string): Promise<void> {
  await run(["xz", "-c", "-1", "-T1"], { stdin: createReadStream(src), stdout: createWriteStream(dst) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "decomp-"));
  raw = join(dir, "disk.raw");
  await writeFile(raw, pattern(6 * 1024 * 1024));
  rawSha = await sha(raw);
  compressed.gzip = join(dir, "disk.raw.gz");
  await writeFile(compressed.gzip, gzipSync(await readFile(raw)));
  compressed.xz = join(dir, "disk.raw.xz");
  await xzFile(raw, compressed.xz);
  const zeros = join(dir, "zeros");
  await writeFile(zeros, Buffer.alloc(64 * 1024 * 1024));
  bombs = { gzip: join(dir, "bomb.gz"), xz: join(dir, "bomb.xz") };
  await writeFile(bombs.gzip, gzipSync(await readFile(zeros)));
  await xzFile(zeros, bombs.xz);
  await rm(zeros);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kinds: CompressionKind[] = ["gzip", "xz"];

describe.each(kinds)("decompress %s", (kind) => {
  it("restores the original bytes and reports increasing progress ending at the totals", async () => {
    const dst = join(dir, `out-${kind}.raw`);
    const seen: [number, number][] = [];
    const result = await decompress(compressed[kind], dst, kind, { onProgress: (i, o) => seen.push([i, o]) });
    expect(await sha(dst)).toBe(rawSha);
    expect(result).toEqual({ bytesIn: (await stat(compressed[kind])).size, bytesOut: 6 * 1024 * 1024 });
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(seen.at(-1)).toEqual([result.bytesIn, result.bytesOut]);
    for (let i = 1; i < seen.length; i++) {
      const [prevIn, prevOut] = seen[i - 1] ?? [0, 0];
      const [curIn, curOut] = seen[i] ?? [0, 0];
      expect(curIn).toBeGreaterThanOrEqual(prevIn);
      expect(curOut).toBeGreaterThanOrEqual(prevOut);
    }
  });

  it("stops at maxOutputBytes with IMAGE_TOO_LARGE and removes the partial output", async () => {
    const dst = join(dir, `bomb-${kind}.raw`);
    const err = await decompress(bombs[kind], dst, kind, { maxOutputBytes: 4 * 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).code).toBe("IMAGE_TOO_LARGE");
    expect((err as IaasError).message).toContain("4 MiB");
    await expect(stat(dst)).rejects.toThrow(/ENOENT/);
  });

  it("removes the partial output when aborted and throws the abort reason", async () => {
    const dst = join(dir, `abort-${kind}.raw`);
    const ac = new AbortController();
    const reason = new IaasError("JOB_CANCELLED", "cancelled by the user");
    const err = await decompress(bombs[kind], dst, kind, { signal: ac.signal, onProgress: () => ac.abort(reason) }).catch((e: unknown) => e);
    expect(err).toBe(reason);
    await expect(stat(dst)).rejects.toThrow(/ENOENT/);
  });

  it("calls corrupt input IMAGE_INVALID and leaves no output behind", async () => {
    const broken = join(dir, `broken-${kind}`);
    const bytes = await readFile(compressed[kind]);
    await writeFile(broken, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const dst = join(dir, `broken-${kind}.raw`);
    const err = await decompress(broken, dst, kind).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).code).toBe("IMAGE_INVALID");
    expect((err as IaasError).hint).toContain("-t");
    await expect(stat(dst)).rejects.toThrow(/ENOENT/);
  });
});

describe.each(kinds)("decompress %s of a disk with empty regions", (kind) => {
  // 2 MiB of data, 48 MiB of zeros, 1 MiB of data, 8 MiB of zeros at the end: 59 MiB.
  const length = 59 * 1024 * 1024;
  let image: string;
  let packed: string;
  beforeAll(async () => {
    image = join(dir, `holes-${kind}.raw`);
    const content = Buffer.alloc(length);
    pattern(2 * 1024 * 1024).copy(content, 0);
    pattern(1024 * 1024).copy(content, 50 * 1024 * 1024);
    await writeFile(image, content);
    packed = join(dir, `holes-${kind}.raw.${kind === "gzip" ? "gz" : "xz"}`);
    if (kind === "gzip") await writeFile(packed, gzipSync(content));
    else await xzFile(image, packed);
  });

  it("writes it sparse: the same bytes and length, with blocks only for the data", async () => {
    const dst = join(dir, `holes-out-${kind}.raw`);
    const result = await decompress(packed, dst, kind, { maxOutputBytes: length });
    expect(result.bytesOut).toBe(length);
    const written = await stat(dst);
    expect(written.size).toBe(length);
    expect(await sha(dst)).toBe(await sha(image));
    // 3 MiB of data (plus a few blocks of slack), not 59 MiB.
    expect(written.blocks * 512).toBeLessThan(4 * 1024 * 1024);
  });

  it("counts the skipped zeros against maxOutputBytes: stops past it and leaves no file", async () => {
    const dst = join(dir, `holes-over-${kind}.raw`);
    const err = await decompress(packed, dst, kind, { maxOutputBytes: 40 * 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasError);
    expect((err as IaasError).code).toBe("IMAGE_TOO_LARGE");
    expect((err as IaasError).message).toContain("40 MiB");
    await expect(stat(dst)).rejects.toThrow(/ENOENT/);
  });
});

describe("decompress", () => {
  it("does not start when the signal is already aborted", async () => {
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await expect(decompress(compressed.gzip, join(dir, "never"), "gzip", { signal: ac.signal })).rejects.toThrow("stop");
    await expect(stat(join(dir, "never"))).rejects.toThrow(/ENOENT/);
  });

  it("refuses a maxOutputBytes that is not a positive integer", async () => {
    await expect(decompress(compressed.gzip, join(dir, "x"), "gzip", { maxOutputBytes: 0 })).rejects.toThrow(RangeError);
  });
});
