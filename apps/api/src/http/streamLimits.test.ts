import { describe, expect, it } from "vitest";
import { StreamLimiter } from "./streamLimits.js";

describe("StreamLimiter", () => {
  it("hands out at most max slots per key and takes them back once per release", () => {
    const limiter = new StreamLimiter(2);
    const a1 = limiter.tryAcquire("t:a");
    const a2 = limiter.tryAcquire("t:a");
    expect(a1).not.toBeNull();
    expect(a2).not.toBeNull();
    expect(limiter.tryAcquire("t:a")).toBeNull();
    expect(limiter.tryAcquire("t:b")).not.toBeNull();
    a1?.();
    a1?.(); // a second release of the same slot frees nothing more
    expect(limiter.count("t:a")).toBe(1);
    const a3 = limiter.tryAcquire("t:a");
    expect(a3).not.toBeNull();
    expect(limiter.tryAcquire("t:a")).toBeNull();
    a2?.();
    a3?.();
    expect(limiter.count("t:a")).toBe(0);
  });

  it("does not limit with max 0", () => {
    const limiter = new StreamLimiter(0);
    for (let i = 0; i < 100; i++) expect(limiter.tryAcquire("k")).not.toBeNull();
  });
});
