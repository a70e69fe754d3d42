import type { JobProgress } from "@iaas/contracts";
import { ProgressMeter } from "../download/ProgressMeter.js";

export interface PhaseProgress {
  /** Reports the absolute number of bytes done in this phase. */
  at(bytesDone: number): void;
  /** Reports a delta of bytes. */
  add(bytes: number): void;
  /** Writes the phase's last step and waits for pending writes. */
  finish(): Promise<void>;
}

/**
 * Progress of one byte-counting phase (download, verify, decompress, convert), mapped into
 * [from, to] of the job's percent, with rate and ETA, written at most once a second so a long
 * transfer does not flood the job's event log.
 */
export function phaseProgress(
  report: (p: JobProgress) => Promise<void>,
  phase: string,
  total: number | null,
  range: { from: number; to: number },
  startBytes = 0,
): PhaseProgress {
  let pending: Promise<void> = Promise.resolve();
  let lastWrite = 0;
  const write = (p: JobProgress, force: boolean) => {
    const now = Date.now();
    if (!force && now - lastWrite < 1000) return;
    lastWrite = now;
    pending = pending.then(() => report(p)).catch(() => undefined);
  };
  let finishing = false;
  const meter = new ProgressMeter(startBytes, total, (d) => {
    const share = total && total > 0 ? Math.min(1, d.bytesDone / total) : 0;
    write(
      {
        phase,
        percent: Math.round((range.from + share * (range.to - range.from)) * 10) / 10,
        bytesDone: d.bytesDone,
        ...(total !== null ? { bytesTotal: total } : {}),
        rate: Math.round(d.rate),
        ...(d.etaSeconds !== null ? { etaSeconds: Math.round(d.etaSeconds) } : {}),
      },
      finishing,
    );
  });
  return {
    at(bytesDone) {
      meter.add(Math.max(0, bytesDone - meter.bytesDone));
    },
    add(bytes) {
      meter.add(bytes);
    },
    async finish() {
      finishing = true;
      meter.finish();
      await pending;
    },
  };
}
