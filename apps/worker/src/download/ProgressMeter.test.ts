import { describe, expect, it } from "vitest";
import { ProgressMeter, type DownloadProgress } from "./ProgressMeter.js";

function meter(start: number, total: number | null): { m: ProgressMeter; reports: DownloadProgress[]; tick(ms: number): void } {
  let now = 0;
  const reports: DownloadProgress[] = [];
  const m = new ProgressMeter(start, total, (p) => reports.push(p), 250, () => now);
  return { m, reports, tick: (ms) => void (now += ms) };
}

describe("ProgressMeter", () => {
  it("reports at most once per interval however many chunks arrive", () => {
    const { m, reports, tick } = meter(0, 10_000);
    for (let i = 0; i < 10; i++) {
      tick(50);
      m.add(100);
    }
    expect(reports.map((r) => r.bytesDone)).toEqual([500, 1000]);
  });

  it("gives the rate in bytes per second and the ETA from the remaining bytes", () => {
    const { m, reports, tick } = meter(0, 10_000);
    tick(250);
    m.add(1000);
    expect(reports[0]).toEqual({ bytesDone: 1000, bytesTotal: 10_000, rate: 4000, etaSeconds: 2.25 });
  });

  it("smooths the rate so one slow interval does not swing it fully", () => {
    const { m, reports, tick } = meter(0, null);
    tick(1000);
    m.add(1000);
    tick(1000);
    m.add(0);
    expect(reports.map((r) => r.rate)).toEqual([1000, 700]);
    expect(reports[1]?.etaSeconds).toBeNull();
  });

  it("counts bytes kept from an earlier attempt in bytesDone but not in the rate", () => {
    const { m, reports, tick } = meter(5000, 6000);
    tick(500);
    m.add(500);
    m.finish();
    expect(reports[0]).toEqual({ bytesDone: 5500, bytesTotal: 6000, rate: 1000, etaSeconds: 0.5 });
    expect(reports.at(-1)).toMatchObject({ bytesDone: 5500 });
  });

  it("sends a final report on finish with an ETA of zero when everything arrived", () => {
    const { m, reports, tick } = meter(0, 100);
    tick(10);
    m.add(100);
    m.finish();
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ bytesDone: 100, bytesTotal: 100, etaSeconds: 0 });
  });
});
