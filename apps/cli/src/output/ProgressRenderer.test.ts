import { describe, expect, it } from "vitest";
import { FakeWriter } from "../testing/FakeWriter.js";
import { makeEvent, makeJob, progressEvent, stateEvent } from "../testing/fixtures.js";
import { createProgressRenderer, PlainProgressRenderer, TtyProgressRenderer } from "./ProgressRenderer.js";
import { TransferProgress } from "./TransferProgress.js";

const succeeded = makeJob({
  state: "succeeded",
  startedAt: "2025-01-01T00:00:01.000Z",
  finishedAt: "2025-01-01T00:00:04.500Z",
});

describe("plain progress (not a terminal)", () => {
  it("prints one line per state change, phase change, 10% step and log message", () => {
    const out = new FakeWriter(false);
    const renderer = createProgressRenderer(out);
    expect(renderer).toBeInstanceOf(PlainProgressRenderer);
    renderer.start(makeJob());
    renderer.event(stateEvent(1, "queued"));
    renderer.event(stateEvent(2, "running", "picked up by hv1"));
    renderer.event(progressEvent(3, { phase: "create-disk", percent: 40 }));
    renderer.event(progressEvent(4, { phase: "create-disk", percent: 45 }));
    renderer.event(progressEvent(5, { phase: "create-disk", percent: 55 }));
    renderer.event(makeEvent(6, { type: "log", level: "warn", message: "slow disk" }));
    renderer.event(progressEvent(7, { phase: "boot", percent: 90, message: "waiting for QMP" }));
    renderer.event(stateEvent(8, "succeeded"));
    renderer.finish(succeeded);
    expect(out.lines()).toEqual([
      "[job 1a2b3c4d] queued (vm.create vm web1)",
      "[job 1a2b3c4d] running: picked up by hv1",
      "[job 1a2b3c4d] running: create-disk 40%",
      "[job 1a2b3c4d] running: create-disk 55%",
      "[job 1a2b3c4d] running: warning: slow disk",
      "[job 1a2b3c4d] running: boot 90% waiting for QMP",
      "[job 1a2b3c4d] succeeded in 3.5s",
    ]);
    expect(out.text).not.toContain("\r");
  });

  it("reports progress seen by polling, and a failure with its message", () => {
    const out = new FakeWriter(false);
    const renderer = createProgressRenderer(out);
    renderer.start(makeJob());
    renderer.note("no live event stream; polling the job instead");
    renderer.job(makeJob({ state: "running", progress: { phase: "convert", percent: 10, bytesDone: 1024, bytesTotal: 10240 } }));
    renderer.finish(makeJob({ state: "failed", error: { code: "QEMU_IMG_FAILED", message: "qemu-img convert failed", hint: null } }));
    expect(out.lines()).toEqual([
      "[job 1a2b3c4d] queued (vm.create vm web1)",
      "[job 1a2b3c4d] no live event stream; polling the job instead",
      "[job 1a2b3c4d] running",
      "[job 1a2b3c4d] running: convert 10% (1 KiB/10 KiB)",
      "[job 1a2b3c4d] failed: qemu-img convert failed",
    ]);
  });
});

describe("TTY progress", () => {
  it("redraws one line in place with a bar while the percent is known", () => {
    const out = new FakeWriter(true, 200);
    let now = 1000;
    const renderer = createProgressRenderer(out, { animate: false, now: () => now });
    expect(renderer).toBeInstanceOf(TtyProgressRenderer);
    renderer.start(makeJob());
    renderer.event(stateEvent(1, "running"));
    now = 3500;
    renderer.event(progressEvent(2, { phase: "create-disk", percent: 40, message: "growing overlay" }));
    const frames = out.text.split("\r\x1b[2K").filter((f) => f !== "");
    expect(frames).toHaveLength(3);
    expect(frames.every((f) => !f.includes("\n"))).toBe(true);
    expect(frames[2]).toBe("⠋ job 1a2b3c4d vm.create vm web1: running create-disk [████████░░░░░░░░░░░░] 40% · growing overlay (2.5s)");
  });

  it("shows a spinner with the phase and message when there is no percent yet, and animates it", () => {
    const out = new FakeWriter(true, 200);
    const renderer = new TtyProgressRenderer(out, { animate: false, now: () => 0 });
    renderer.start(makeJob());
    renderer.event(stateEvent(1, "running", "starting QEMU"));
    expect(renderer.line()).toBe("⠋ job 1a2b3c4d vm.create vm web1: running · starting QEMU (0ms)");
  });

  it("prints log lines above the live line and ends with an outcome line", () => {
    const out = new FakeWriter(true, 200);
    const renderer = createProgressRenderer(out, { animate: false, now: () => 0 });
    renderer.start(makeJob());
    renderer.event(makeEvent(1, { type: "log", message: "disk created", state: "running" }));
    renderer.finish(succeeded);
    expect(out.text).toContain("\r\x1b[2K  disk created\n");
    expect(out.text.endsWith("\r\x1b[2K✔ job 1a2b3c4d vm.create vm web1: succeeded in 3.5s\n")).toBe(true);
  });

  it("cuts the live line to the terminal width so redrawing never wraps", () => {
    const out = new FakeWriter(true, 30);
    const renderer = createProgressRenderer(out, { animate: false, now: () => 0 });
    renderer.start(makeJob());
    renderer.event(progressEvent(1, { phase: "a-very-long-phase-name", percent: 5, message: "and a long message" }));
    const last = out.text.split("\r\x1b[2K").pop() ?? "";
    expect(last.length).toBe(29);
    expect(last.endsWith("…")).toBe(true);
  });

  it("clears the live line when stopped without an outcome", () => {
    const out = new FakeWriter(true);
    const renderer = createProgressRenderer(out, { animate: false });
    renderer.start(makeJob());
    renderer.stop();
    expect(out.text.endsWith("\r\x1b[2K")).toBe(true);
  });
});

describe("transfer figures in job progress", () => {
  const transfer = { phase: "download", percent: 45, bytesDone: 1.2 * 1024 ** 3, bytesTotal: 2.7 * 1024 ** 3, rate: 85 * 1024 ** 2, etaSeconds: 18 };

  it("shows bytes, rate and ETA on the TTY line", () => {
    const renderer = new TtyProgressRenderer(new FakeWriter(true, 200), { animate: false, now: () => 0 });
    renderer.start(makeJob({ type: "image.import", targetName: "deb12" }));
    renderer.event(progressEvent(1, transfer));
    expect(renderer.line()).toBe("⠋ job 1a2b3c4d image.import image deb12: queued download [█████████░░░░░░░░░░░] 45% 1.2 GiB/2.7 GiB 85 MiB/s ETA 18s (0ms)");
  });

  it("includes bytes, rate and ETA in plain lines, one per phase or 10% step", () => {
    const out = new FakeWriter(false);
    const renderer = createProgressRenderer(out);
    renderer.start(makeJob({ state: "running" }));
    renderer.event(progressEvent(1, transfer));
    renderer.event(progressEvent(2, { ...transfer, percent: 46, etaSeconds: 17 }));
    renderer.event(progressEvent(3, { ...transfer, percent: 60, etaSeconds: 250 }));
    renderer.event(progressEvent(4, { phase: "convert", percent: 0 }));
    expect(out.lines()).toEqual([
      "[job 1a2b3c4d] running (vm.create vm web1)",
      "[job 1a2b3c4d] running: download 45% (1.2 GiB/2.7 GiB, 85 MiB/s, ETA 18s)",
      "[job 1a2b3c4d] running: download 60% (1.2 GiB/2.7 GiB, 85 MiB/s, ETA 4m10s)",
      "[job 1a2b3c4d] running: convert 0%",
    ]);
  });
});

describe("TransferProgress", () => {
  it("shows bytes, percent, rate and ETA on a terminal", () => {
    const out = new FakeWriter(true, 200);
    let now = 0;
    const upload = new TransferProgress(out, "upload", "deb12.qcow2", 4 * 1024 ** 2, () => now);
    upload.begin(4 * 1024 ** 2, 0);
    now = 1000;
    upload.update(2 * 1024 ** 2);
    expect(upload.line()).toBe("uploading deb12.qcow2 [██████████░░░░░░░░░░] 50% 2 MiB/4 MiB 2 MiB/s ETA 1s");
    now = 2000;
    upload.update(4 * 1024 ** 2);
    upload.finish();
    expect(out.text.endsWith("\r\x1b[2Kuploaded deb12.qcow2: 4 MiB in 2.0s (2 MiB/s)\n")).toBe(true);
  });

  it("prints a start line, retries and an end line when not on a terminal, counting only this run's bytes in the rate", () => {
    const out = new FakeWriter(false);
    let now = 0;
    const download = new TransferProgress(out, "download", "a.raw", null, () => now);
    download.begin(2048, 1024);
    download.update(1536);
    download.retry({ reason: "connection reset", position: 1536, delayMs: 500, attempt: 1, maxAttempts: 9 });
    download.begin(2048, 1536);
    now = 500;
    download.update(2048);
    download.finish();
    expect(out.lines()).toEqual([
      "downloading a.raw (2 KiB, from 1 KiB)",
      "downloading a.raw broke off at 1.5 KiB of 2 KiB: connection reset; resuming in 500ms (retry 1/9)",
      "downloaded a.raw: 2 KiB (1 KiB in this run) in 500ms (2 KiB/s)",
    ]);
  });
});
