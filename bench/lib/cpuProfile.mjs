// Where a process spent its CPU: a V8 .cpuprofile (node --cpu-prof) summed by self time, per
// package (node_modules/NAME, the project's own apps/packages, Node's internals) and per function.
import { readFile } from "node:fs/promises";

/** The bucket a profile frame belongs to: an npm package, a workspace, node internals, or V8's pseudo-frames. */
function bucketOf(url, functionName) {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/(apps|packages)\/([^/]+)\//.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  if (url.startsWith("node:")) return "node internals";
  return url;
}

/** Self time (ms) by bucket and by function, and the sampled total, of one .cpuprofile file. */
export async function summarizeCpuProfile(file) {
  const profile = JSON.parse(await readFile(file, "utf8"));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    hits.set(id, (hits.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const buckets = new Map();
  const functions = new Map();
  let total = 0;
  for (const [id, us] of hits) {
    const { callFrame } = byId.get(id);
    const bucket = bucketOf(callFrame.url, callFrame.functionName);
    const fn = `${callFrame.functionName || "(anonymous)"} ${bucket}`;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us / 1000);
    functions.set(fn, (functions.get(fn) ?? 0) + us / 1000);
    total += us / 1000;
  }
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]);
  return { total, idle: buckets.get("(idle)") ?? 0, buckets: sorted(buckets), functions: sorted(functions) };
}

/** Text lines: busy time, then the top buckets and functions by self time. */
export function formatCpuProfile(name, summary, top = 12) {
  const busy = summary.total - summary.idle;
  const pct = (ms) => `${((100 * ms) / busy).toFixed(1).padStart(5)} %`;
  const lines = [`${name}: ${(busy / 1000).toFixed(2)} s of CPU sampled (idle excluded), by package — self time:`];
  for (const [bucket, ms] of summary.buckets.filter(([b]) => b !== "(idle)").slice(0, top)) lines.push(`  ${pct(ms)}  ${bucket}`);
  lines.push(`  hottest functions:`);
  for (const [fn, ms] of summary.functions.filter(([f]) => !f.startsWith("(idle)")).slice(0, top)) lines.push(`  ${pct(ms)}  ${fn}`);
  return lines;
}
