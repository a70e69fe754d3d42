import { describe, expect, it } from "vitest";
import { StreamLimiter } from "./streamLimits.js";

function slot(limiter: StreamLimiter, key: string): () => void {
  const got = limiter.tryAcquire(key);
  if ("refused" in got) throw new Error(`refused (${got.refused})`);
  return got.release;
}

describe("StreamLimiter", () => {
  it("hands out at most max slots per key and takes them back once per release", () => {
    const limiter = new StreamLimiter(2);
    const a1 = slot(limiter, "t:a");
    const a2 = slot(limiter, "t:a");
    expect(limiter.tryAcquire("t:a")).toEqual({ refused: "token" });
    slot(limiter, "t:b");
    a1();
    a1(); // a second release of the same slot frees nothing more
    expect(limiter.count("t:a")).toBe(1);
    const a3 = slot(limiter, "t:a");
    expect(limiter.tryAcquire("t:a")).toEqual({ refused: "token" });
    a2();
    a3();
    expect(limiter.count("t:a")).toBe(0);
  });

  it("does not limit with max 0", () => {
    const limiter = new StreamLimiter(0);
    for (let i = 0; i < 100; i++) expect("release" in limiter.tryAcquire("k")).toBe(true);
    expect(limiter.total()).toBe(100);
  });

  it("caps the streams of the whole process across keys, and counts them", () => {
    const limiter = new StreamLimiter(5, 3);
    const releases = [slot(limiter, "t:a"), slot(limiter, "t:b"), slot(limiter, "t:c")];
    expect(limiter.total()).toBe(3);
    expect(limiter.tryAcquire("t:d")).toEqual({ refused: "process" });
    releases[1]?.();
    releases[1]?.();
    expect(limiter.total()).toBe(2);
    slot(limiter, "t:d");
    expect(limiter.total()).toBe(3);
  });
});
