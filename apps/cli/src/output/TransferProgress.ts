import { formatSize } from "@iaas/contracts";
import type { RetryNotice } from "../client/uploadFile.js";
import { formatByteRate, formatDuration, formatPercent, lineWidth, progressBar, transferFigures, truncate } from "./format.js";
import type { Writer } from "./Output.js";
import { sanitizeLine, sanitizeText } from "./sanitize.js";

const CLEAR_LINE = "\r\x1b[2K";

const VERBS = {
  upload: { ing: "uploading", ed: "uploaded" },
  download: { ing: "downloading", ed: "downloaded" },
} as const;

/**
 * Progress of an upload or a download: on a TTY a line with bar, bytes, percent, rate and ETA
 * redrawn at most every 100 ms; elsewhere a line when it starts, one per retry and one at the end.
 */
export class TransferProgress {
  private startedAt: number | null = null;
  private lastDraw = -Infinity;
  private position = 0;
  /** Bytes moved in this run (resent bytes count: this is the line's throughput). */
  private moved = 0;
  private readonly verb: (typeof VERBS)[keyof typeof VERBS];
  /** The file or image name, terminal-safe. */
  private readonly label: string;

  constructor(
    private readonly stream: Writer,
    kind: keyof typeof VERBS,
    label: string,
    private total: number | null,
    private readonly now: () => number = Date.now,
  ) {
    this.verb = VERBS[kind];
    this.label = sanitizeLine(label);
  }

  /** A request starts sending from byte `from` (of `total`, when known). */
  begin(total: number | null, from: number): void {
    this.total = total ?? this.total;
    this.position = from;
    if (this.startedAt === null) {
      this.startedAt = this.now();
      if (this.stream.isTTY !== true) {
        const size = this.total === null ? "size unknown" : formatSize(this.total);
        this.stream.write(`${this.verb.ing} ${this.label} (${size}${from > 0 ? `, from ${formatSize(from)}` : ""})\n`);
      }
    }
    this.draw(true);
  }

  update(position: number): void {
    if (position > this.position) this.moved += position - this.position;
    this.position = position;
    this.draw(this.total !== null && position >= this.total);
  }

  /** A line above the live one: a remark, or a pause before resuming. */
  note(text: string): void {
    this.stream.write(`${this.stream.isTTY === true ? CLEAR_LINE : ""}${sanitizeText(text)}\n`);
    this.draw(true);
  }

  retry(notice: RetryNotice): void {
    this.position = notice.position;
    const at = this.total === null ? formatSize(notice.position) : `${formatSize(notice.position)} of ${formatSize(this.total)}`;
    this.note(`${this.verb.ing} ${this.label} broke off at ${at}: ${notice.reason}; resuming in ${formatDuration(notice.delayMs)} (retry ${notice.attempt}/${notice.maxAttempts})`);
  }

  /** Finished: the size, time and average rate. */
  finish(): void {
    const elapsed = this.elapsed();
    const prefix = this.stream.isTTY === true ? CLEAR_LINE : "";
    const size = formatSize(this.total ?? this.position);
    const moved = this.moved < (this.total ?? this.position) ? ` (${formatSize(this.moved)} in this run)` : "";
    this.stream.write(`${prefix}${this.verb.ed} ${this.label}: ${size}${moved} in ${formatDuration(elapsed)} (${this.rateText(elapsed)})\n`);
  }

  /** Failed: leave the live line where it stopped. */
  fail(): void {
    if (this.stream.isTTY === true && this.startedAt !== null) this.stream.write("\n");
  }

  /** The live line, without control characters. */
  line(): string {
    const elapsed = this.elapsed();
    const rate = elapsed > 0 ? (this.moved * 1000) / elapsed : undefined;
    const parts = [`${this.verb.ing} ${this.label}`];
    if (this.total !== null) {
      const percent = this.total === 0 ? 100 : (this.position / this.total) * 100;
      parts.push(progressBar(percent), formatPercent(percent));
    }
    const left = this.total === null ? undefined : this.total - this.position;
    const figures = transferFigures({
      bytesDone: this.position,
      bytesTotal: this.total ?? undefined,
      rate,
      etaSeconds: rate !== undefined && rate > 0 && left !== undefined && left > 0 ? left / rate : undefined,
    });
    return [...parts, ...figures].join(" ");
  }

  private rateText(elapsed: number): string {
    return elapsed > 0 ? formatByteRate((this.moved * 1000) / elapsed) : "-";
  }

  private elapsed(): number {
    return this.startedAt === null ? 0 : this.now() - this.startedAt;
  }

  private draw(force: boolean): void {
    if (this.stream.isTTY !== true || this.startedAt === null) return;
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.stream.write(`${CLEAR_LINE}${truncate(this.line(), lineWidth(this.stream.columns))}`);
  }
}
