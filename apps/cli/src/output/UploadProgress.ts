import { formatSize } from "@iaas/contracts";
import { formatDuration, formatPercent, formatRate, lineWidth, progressBar, truncate } from "./format.js";
import type { Writer } from "./Output.js";

const CLEAR_LINE = "\r\x1b[2K";

/**
 * Upload progress: on a TTY a line with bytes, percent and rate redrawn at most every 100 ms;
 * elsewhere one line when the upload starts and one when it ends.
 */
export class UploadProgress {
  private readonly startedAt: number;
  private lastDraw = -Infinity;
  private sent = 0;

  constructor(
    private readonly stream: Writer,
    private readonly label: string,
    private readonly total: number,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
    if (stream.isTTY === true) this.draw();
    else stream.write(`uploading ${label} (${formatSize(total)})\n`);
  }

  update(bytesSent: number): void {
    this.sent = bytesSent;
    if (this.stream.isTTY !== true) return;
    const t = this.now();
    if (t - this.lastDraw < 100 && bytesSent < this.total) return;
    this.draw();
  }

  /** The upload finished: print the total, time and average rate. */
  finish(): void {
    const elapsed = this.now() - this.startedAt;
    const prefix = this.stream.isTTY === true ? CLEAR_LINE : "";
    this.stream.write(`${prefix}uploaded ${this.label}: ${formatSize(this.sent)} in ${formatDuration(elapsed)} (${formatRate(this.sent, elapsed)})\n`);
  }

  /** The upload failed: leave the line where it stopped. */
  fail(): void {
    if (this.stream.isTTY === true) this.stream.write("\n");
  }

  /** The live line, without control characters. */
  line(): string {
    const elapsed = this.now() - this.startedAt;
    const percent = this.total === 0 ? 100 : (this.sent / this.total) * 100;
    return [
      `uploading ${this.label}`,
      progressBar(percent),
      formatPercent(percent),
      `${formatSize(this.sent)}/${formatSize(this.total)}`,
      formatRate(this.sent, elapsed),
    ].join(" ");
  }

  private draw(): void {
    this.lastDraw = this.now();
    this.stream.write(`${CLEAR_LINE}${truncate(this.line(), lineWidth(this.stream.columns))}`);
  }
}
