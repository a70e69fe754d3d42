// Small statistics and formatting helpers for the benches (bench/jobs.mjs, bench/images.mjs).

/** Nearest-rank percentile of an array of numbers (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(values) {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), mean, max: Math.max(...values) };
}

export const ms = (v) => (Number.isFinite(v) ? v.toFixed(2) : "n/a");
export const rate = (v) => (Number.isFinite(v) ? v.toFixed(0) : "n/a");

/** Renders rows (arrays of strings) as a left/right aligned text table. */
export function table(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? "").length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("   ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("   "), ...rows.map(line)].join("\n");
}

/** Median of an array of numbers (mean of the two middle values for an even count). */
export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
