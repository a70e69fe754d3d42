import { isTerminalJobState, type Job, type JobEvent, type JobProgress, type JobState } from "@iaas/contracts";
import { formatDuration, formatPercent, formatProgress, jobTarget, lineWidth, progressBar, shortId, transferFigures, truncate } from "./format.js";
import type { Writer } from "./Output.js";
import { sanitizeLine, sanitizeText } from "./sanitize.js";

/** Shows a job being followed: a live line on a terminal, plain lines elsewhere. */
export interface ProgressRenderer {
  start(job: Job): void;
  event(event: JobEvent): void;
  /** The job as polling saw it (when there is no event stream). */
  job(job: Job): void;
  /** A remark about the following itself, e.g. falling back to polling. */
  note(text: string): void;
  /** The job is final: print its outcome line. */
  finish(job: Job): void;
  /** Stop without an outcome (timeout, error): clear the live line. */
  stop(): void;
}

export interface ProgressRendererOptions {
  /** Milliseconds clock, for the elapsed time. */
  now?: () => number;
  /** Animate the spinner on a timer (default true). */
  animate?: boolean;
}

/** A progress bar/spinner redrawn in place when `stream` is a TTY, plain lines otherwise. */
export function createProgressRenderer(stream: Writer, options: ProgressRendererOptions = {}): ProgressRenderer {
  return stream.isTTY === true ? new TtyProgressRenderer(stream, options) : new PlainProgressRenderer(stream);
}

/** What both renderers know about the job. */
class JobStatus {
  id = "";
  label = "";
  state: JobState = "queued";
  progress: JobProgress | null = null;

  reset(job: Job): void {
    this.id = job.id;
    this.label = `${job.type} ${jobTarget(job)}`;
    this.state = job.state;
    this.progress = job.progress;
  }
}

function outcome(job: Job): string {
  const took =
    job.finishedAt !== null ? ` in ${formatDuration(Date.parse(job.finishedAt) - Date.parse(job.startedAt ?? job.createdAt))}` : "";
  switch (job.state) {
    case "succeeded":
      return `succeeded${took}`;
    case "cancelled":
      return `cancelled${job.error === null ? "" : `: ${job.error.message}`}`;
    case "failed":
      return `failed: ${job.error?.message ?? "no error recorded"}`;
    default:
      return job.state;
  }
}

/**
 * Picks the progress reports worth a line of their own (in logs and pipes): a new phase (download,
 * inspect, convert, verify …), a 10% step, reaching 100%, or a new message. A transfer reports
 * many times a second; the rest would flood the output.
 */
export class ProgressLines {
  private phase: string | null = null;
  private percent = -1;
  private message: string | undefined;

  /** True (and remembered as printed) when `progress` deserves a line. */
  take(progress: JobProgress): boolean {
    const phaseChanged = progress.phase !== this.phase;
    const stepped = progress.percent - this.percent >= 10 || (progress.percent >= 100 && this.percent < 100);
    const messageChanged = progress.message !== undefined && progress.message !== this.message;
    if (!phaseChanged && !stepped && !messageChanged) return false;
    this.phase = progress.phase;
    this.percent = progress.percent;
    this.message = progress.message;
    return true;
  }
}

/** One line per state change, phase change, 10% step or log message: for logs and pipes. */
export class PlainProgressRenderer implements ProgressRenderer {
  private readonly status = new JobStatus();
  private readonly lines = new ProgressLines();
  private printedState: JobState | null = null;

  constructor(private readonly stream: Writer) {}

  start(job: Job): void {
    this.status.reset(job);
    this.print(`${job.state} (${this.status.label})`);
    this.printedState = job.state;
    if (job.progress !== null) this.progress(job.progress);
  }

  event(event: JobEvent): void {
    if (event.state !== null) this.state(event.state, event.type === "state" ? event.message : "");
    if (event.progress !== null) this.progress(event.progress);
    if (event.type === "log" && event.message !== "") {
      const level = event.level === "info" ? "" : `${event.level === "warn" ? "warning" : "error"}: `;
      this.print(`${this.status.state}: ${level}${event.message}`);
    }
  }

  job(job: Job): void {
    this.state(job.state, "");
    if (job.progress !== null) this.progress(job.progress);
  }

  note(text: string): void {
    this.print(text);
  }

  finish(job: Job): void {
    this.print(outcome(job));
  }

  stop(): void {}

  private state(state: JobState, message: string): void {
    this.status.state = state;
    if (state === this.printedState || isTerminalJobState(state)) return;
    this.printedState = state;
    this.print(message === "" ? state : `${state}: ${message}`);
  }

  private progress(progress: JobProgress): void {
    this.status.progress = progress;
    if (!this.lines.take(progress)) return;
    this.print(`${this.status.state}: ${formatProgress(progress)}`);
  }

  private print(text: string): void {
    this.stream.write(`[job ${shortId(this.status.id)}] ${sanitizeText(text)}\n`);
  }
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const CLEAR_LINE = "\r\x1b[2K";

/** One status line redrawn in place: spinner, state, phase, bar, bytes, rate, ETA, message, elapsed time. */
export class TtyProgressRenderer implements ProgressRenderer {
  private readonly status = new JobStatus();
  private readonly now: () => number;
  private readonly animate: boolean;
  private startedAt = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastMessage = "";

  constructor(
    private readonly stream: Writer,
    options: ProgressRendererOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.animate = options.animate ?? true;
  }

  start(job: Job): void {
    this.status.reset(job);
    this.startedAt = this.now();
    if (this.animate) {
      this.timer = setInterval(() => {
        this.frame++;
        this.render();
      }, 100);
      this.timer.unref();
    }
    this.render();
  }

  event(event: JobEvent): void {
    if (event.state !== null) this.status.state = event.state;
    if (event.progress !== null) this.status.progress = event.progress;
    if (event.type === "log" && event.message !== "") this.above(`  ${event.level === "info" ? "" : `${event.level}: `}${event.message}`);
    else if (event.type === "state" && event.message !== "") this.lastMessage = event.message;
    this.render();
  }

  job(job: Job): void {
    this.status.state = job.state;
    if (job.progress !== null) this.status.progress = job.progress;
    this.render();
  }

  note(text: string): void {
    this.above(`  ${text}`);
    this.render();
  }

  finish(job: Job): void {
    this.halt();
    const mark = job.state === "succeeded" ? "✔" : "✖";
    this.stream.write(`${CLEAR_LINE}${mark} job ${shortId(job.id)} ${sanitizeText(`${this.status.label}: ${outcome(job)}`)}\n`);
  }

  stop(): void {
    this.halt();
    this.stream.write(CLEAR_LINE);
  }

  /** The current status line, without control characters. */
  line(): string {
    const s = this.status;
    const spinner = SPINNER[this.frame % SPINNER.length] ?? "*";
    const parts = [`${spinner} job ${shortId(s.id)} ${s.label}: ${s.state}`];
    const p = s.progress;
    if (p !== null) {
      parts.push(p.phase, progressBar(p.percent), formatPercent(p.percent), ...transferFigures(p));
    }
    const message = p?.message ?? this.lastMessage;
    if (message !== "") parts.push(`· ${message}`);
    parts.push(`(${formatDuration(this.now() - this.startedAt)})`);
    return parts.join(" ");
  }

  private render(): void {
    this.stream.write(`${CLEAR_LINE}${truncate(sanitizeLine(this.line()), lineWidth(this.stream.columns))}`);
  }

  private above(text: string): void {
    this.stream.write(`${CLEAR_LINE}${sanitizeText(text)}\n`);
  }

  private halt(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
