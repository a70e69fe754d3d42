import { describe, expect, it } from "vitest";
import { JobSubscription } from "./JobEventHub.js";

describe("JobSubscription", () => {
  const open = () => {
    const closed: JobSubscription[] = [];
    return { sub: new JobSubscription("0b8f6a52-3c1e-4d7a-9f3e-2a1b4c5d6e7f", (s) => closed.push(s)), closed };
  };

  it("merges what happened while nobody waited: the highest seq, final if any was, resync if any was", async () => {
    const { sub } = open();
    sub.deliver({ seq: 4, final: false, resync: false });
    sub.deliver({ seq: 6, final: true, resync: false });
    sub.deliver({ seq: 5, final: false, resync: true });
    expect(await sub.next(1000, new AbortController().signal)).toEqual({ seq: 6, final: true, resync: true });
    // Taken: the next call waits again.
    expect(await sub.next(10, new AbortController().signal)).toBeNull();
  });

  it("wakes a waiting watcher as soon as something is delivered", async () => {
    const { sub } = open();
    const waiting = sub.next(60_000, new AbortController().signal);
    sub.deliver({ seq: 2, final: false, resync: false });
    expect(await waiting).toEqual({ seq: 2, final: false, resync: false });
  });

  it("answers null when the time passes or the client leaves first, and tells the hub when closed", async () => {
    const { sub, closed } = open();
    expect(await sub.next(5, new AbortController().signal)).toBeNull();
    const leaving = new AbortController();
    const waiting = sub.next(60_000, leaving.signal);
    leaving.abort();
    expect(await waiting).toBeNull();
    sub.close();
    sub.close();
    expect(closed).toEqual([sub]);
    sub.deliver({ seq: 9, final: true, resync: false });
    expect(await sub.next(0, new AbortController().signal)).toBeNull();
  });
});
