import { formatSize, type Job, type JobProgress } from "@iaas/contracts";

/** The first 8 characters of an id, as tables and progress lines show it. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/** "5s ago", "3m ago", "2h ago", "4d ago" (and "in 5s" for a clock ahead of ours). */
export function formatAge(iso: string, now: Date): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const seconds = Math.round((now.getTime() - then) / 1000);
  const abs = Math.abs(seconds);
  let text: string;
  if (abs < 60) text = `${abs}s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)}m`;
  else if (abs < 86_400) text = `${Math.floor(abs / 3600)}h`;
  else text = `${Math.floor(abs / 86_400)}d`;
  return seconds < 0 ? `in ${text}` : `${text} ago`;
}

/** "850ms", "12.3s", "4m05s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.floor((ms % 60_000) / 1000);
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}

/** "85.3 MiB/s". */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return "-";
  return `${formatSize(Math.round((bytes * 1000) / ms))}/s`;
}

/** "40%" without trailing decimals. */
export function formatPercent(percent: number): string {
  return `${Math.floor(percent)}%`;
}

/** A fixed-width bar: `[████░░░░░░]`. */
export function progressBar(percent: number, width = 20): string {
  const clamped = Math.min(100, Math.max(0, percent));
  const filled = Math.round((clamped / 100) * width);
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}]`;
}

/** "85 MiB/s" from bytes per second. */
export function formatByteRate(bytesPerSecond: number): string {
  return `${formatSize(Math.max(0, Math.round(bytesPerSecond)))}/s`;
}

/** Time left: "18s", "4m05s", "2h07m". */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The transfer figures of a progress report: ["1.2 GiB/2.7 GiB", "85 MiB/s", "ETA 18s"], as known. */
export function transferFigures(progress: Pick<JobProgress, "bytesDone" | "bytesTotal" | "rate" | "etaSeconds">): string[] {
  const parts: string[] = [];
  if (progress.bytesDone !== undefined) {
    parts.push(progress.bytesTotal === undefined ? formatSize(progress.bytesDone) : `${formatSize(progress.bytesDone)}/${formatSize(progress.bytesTotal)}`);
  }
  if (progress.rate !== undefined) parts.push(formatByteRate(progress.rate));
  if (progress.etaSeconds !== undefined) parts.push(`ETA ${formatEta(progress.etaSeconds)}`);
  return parts;
}

/** "create-disk 40% (1.2 GiB/3 GiB) growing overlay"; a transfer adds its rate and ETA: "(1 GiB/2 GiB, 85 MiB/s, ETA 12s)". */
export function formatProgress(progress: JobProgress): string {
  const parts = [progress.phase, formatPercent(progress.percent)];
  const figures = transferFigures(progress);
  if (figures.length > 0) parts.push(`(${figures.join(", ")})`);
  if (progress.message !== undefined && progress.message !== "") parts.push(progress.message);
  return parts.join(" ");
}

/** What a job acts on: "vm web1", "image deb12", or "-" (a backup job names the VM the backup is of). */
export function jobTarget(job: Pick<Job, "type" | "targetName" | "vmId" | "imageId">): string {
  const kind = job.type.startsWith("backup.") ? "vm" : (job.type.split(".")[0] ?? job.type);
  const name = job.targetName ?? job.vmId ?? job.imageId;
  return name === null ? "-" : `${kind} ${name}`;
}

/** Cuts `text` to `width` characters, marking the cut with "…". */
export function truncate(text: string, width: number): string {
  if (width <= 0) return "";
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** Usable width of a terminal line: one less than its columns (so the cursor never wraps), 80 if unknown. */
export function lineWidth(columns: number | undefined): number {
  return (columns !== undefined && columns > 1 ? columns : 80) - 1;
}

/** "1.5 GiB of 3 GiB (50%)". */
export function formatPartOf(done: number, total: number): string {
  return `${formatSize(done)} of ${formatSize(total)} (${formatPercent(total === 0 ? 100 : (done / total) * 100)})`;
}
