import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ProcessError, run } from "./run.js";

const node = process.execPath;

async function rejection(p: Promise<unknown>): Promise<ProcessError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ProcessError) return err;
    throw err;
  }
  throw new Error("expected the promise to reject");
}

/** Collects what is written; `failAfter` bytes makes it fail like a full disk or a size limit. */
function sink(opts: { failAfter?: number; slowMs?: number } = {}): Writable & { bytes: () => Buffer; finished: () => boolean } {
  const chunks: Buffer[] = [];
  let total = 0;
  let done = false;
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      if (opts.failAfter !== undefined && total > opts.failAfter) {
        cb(new Error("sink is full"));
        return;
      }
      chunks.push(chunk);
      setTimeout(cb, opts.slowMs ?? 0);
    },
    final(cb) {
      done = true;
      cb();
    },
  });
  return Object.assign(w, { bytes: () => Buffer.concat(chunks), finished: () => done });
}

const CAT = "process.stdin.pipe(process.stdout)";

describe("run with streamed stdin and stdout", () => {
  it("pipes a Readable through the process into a Writable and settles after the Writable has finished", async () => {
    const data = Buffer.alloc(3 * 1024 * 1024, "abc");
    const out = sink({ slowMs: 1 });
    const r = await run([node, "-e", CAT], { stdin: Readable.from([data.subarray(0, 1000), data.subarray(1000)]), stdout: out });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(out.finished()).toBe(true);
    expect(out.bytes().equals(data)).toBe(true);
  });

  it("kills the process when the output stream fails, reporting the stream's error as the cause", async () => {
    const flood = "const b = Buffer.alloc(65536); (function w() { process.stdout.write(b, w); })()";
    const err = await rejection(run([node, "-e", flood], { stdout: sink({ failAfter: 256 * 1024 }), timeoutMs: 20_000 }));
    expect(err.reason).toBe("io");
    expect(err.cause).toBeInstanceOf(Error);
    expect((err.cause as Error).message).toBe("sink is full");
    expect(err.message).toContain("streaming its input or output failed (sink is full)");
  });

  it("kills the process when the input stream fails", async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error("disk read error"));
      },
    });
    const err = await rejection(run([node, "-e", "process.stdin.resume(); setInterval(() => {}, 1000)"], { stdin: broken, timeoutMs: 20_000 }));
    expect(err.reason).toBe("io");
    expect((err.cause as Error).message).toBe("disk read error");
  });

  it("destroys an input stream the process did not read to the end", async () => {
    const endless = new Readable({
      read() {
        this.push(Buffer.alloc(65536));
      },
    });
    const r = await run([node, "-e", "process.exit(0)"], { stdin: endless });
    expect(r.code).toBe(0);
    expect(endless.destroyed).toBe(true);
  });

  it("still times out and reports a failed exit while streaming", async () => {
    const slow = await rejection(run([node, "-e", "setInterval(() => {}, 1000)"], { stdout: sink(), timeoutMs: 200 }));
    expect(slow.reason).toBe("timeout");
    const failed = await rejection(run([node, "-e", "process.stderr.write('bad input'); process.exit(1)"], { stdin: Readable.from(["x"]), stdout: sink() }));
    expect(failed.reason).toBe("exit");
    expect(failed.message).toContain("bad input");
  });

  it("refuses input and stdin together", async () => {
    await expect(run([node, "-e", ""], { input: "a", stdin: Readable.from(["b"]) })).rejects.toThrow(/either input or stdin/);
  });
});
