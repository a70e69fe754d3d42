export interface DownloadProgress {
  /** Bytes in the destination so far, including those kept from an earlier, resumed attempt. */
  bytesDone: number;
  /** The full size, when the server said it. */
  bytesTotal: number | null;
  /** Bytes per second, smoothed. */
  rate: number;
  etaSeconds: number | null;
}

/** Weight of the newest interval in the smoothed rate. */
const SMOOTHING = 0.3;

/**
 * Counts bytes and reports progress at most every `intervalMs` (and once at the end), with an
 * exponentially smoothed rate so one slow chunk does not swing the ETA.
 */
export class ProgressMeter {
  private done: number;
  private rate = 0;
  private lastAt: number;
  private lastDone: number;

  constructor(
    startBytes: number,
    private readonly total: number | null,
    private readonly report: ((p: DownloadProgress) => void) | undefined,
    private readonly intervalMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.done = startBytes;
    this.lastDone = startBytes;
    this.lastAt = now();
  }

  get bytesDone(): number {
    return this.done;
  }

  add(bytes: number): void {
    this.done += bytes;
    if (this.now() - this.lastAt >= this.intervalMs) this.emit();
  }

  /** The final report, whatever the time since the last one. */
  finish(): void {
    this.emit();
  }

  private emit(): void {
    const at = this.now();
    const elapsed = (at - this.lastAt) / 1000;
    if (elapsed > 0) {
      const instant = (this.done - this.lastDone) / elapsed;
      this.rate = this.rate === 0 ? instant : SMOOTHING * instant + (1 - SMOOTHING) * this.rate;
    }
    this.lastAt = at;
    this.lastDone = this.done;
    if (!this.report) return;
    const remaining = this.total === null ? null : Math.max(0, this.total - this.done);
    const etaSeconds = remaining === null ? null : remaining === 0 ? 0 : this.rate > 0 ? remaining / this.rate : null;
    this.report({ bytesDone: this.done, bytesTotal: this.total, rate: Math.round(this.rate), etaSeconds });
  }
}
