// The suite's closing table: faults injected, jobs, outcomes, requests, invariant violations, durations.
import type { Chaos } from "./chaos.js";
import type { ClientStats, AcceptedJob } from "./client.js";
import { INVARIANTS, type Findings } from "./invariants.js";
import type { Load } from "./load.js";
import type { FaultStack } from "./stack.js";

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

export interface Durations {
  setupMs: number;
  loadMs: number;
  quiesceMs: number;
  checkMs: number;
  totalMs: number;
}

export async function buildReport(opts: {
  seed: number;
  stack: FaultStack;
  chaos: Chaos;
  load: Load;
  stats: ClientStats;
  accepted: Map<string, AcceptedJob>;
  findings: Findings;
  durations: Durations;
  quiesced: boolean;
}): Promise<string> {
  const { stack, chaos, load, stats, accepted, findings, durations } = opts;
  const out: string[] = [];
  const section = (title: string, body: string) => out.push(`\n== ${title} ==\n${body}`);
  out.push(`fault seed: ${opts.seed} (replay with IAAS_FAULT_SEED=${opts.seed})`);

  const byKind = countBy(chaos.faults, (f) => f.kind);
  section(
    "faults injected",
    table(["fault", "count"], [...byKind].map(([k, n]) => [k, n])) +
      "\n\n" +
      table(["at", "fault", "detail"], chaos.faults.map((f) => [`+${f.at.toFixed(1)}s`, f.kind, f.detail])) +
      (chaos.missed.length ? `\nnot caught running (no kill): ${chaos.missed.join(", ")}` : ""),
  );

  const rows = await stack.query<{ id: string; type: string; state: string; errorCode: string | null }>(`SELECT id, type, state::text AS state, "errorCode" FROM "Job"`);
  const acceptedRows = rows.filter((r) => accepted.has(r.id));
  const types = [...new Set(acceptedRows.map((r) => r.type))].sort();
  const viaCli = [...accepted.values()].filter((a) => a.via === "cli").length;
  section(
    `jobs: ${accepted.size} accepted (${viaCli} through the CLI), ${rows.length} in Postgres (with the monitor's vm.reconcile records)`,
    table(
      ["type", "accepted", "succeeded", "failed", "cancelled", "not final"],
      types.map((t) => {
        const of = acceptedRows.filter((r) => r.type === t);
        const n = (s: string) => of.filter((r) => r.state === s).length;
        return [t, of.length, n("succeeded"), n("failed"), n("cancelled"), of.length - n("succeeded") - n("failed") - n("cancelled")];
      }),
    ),
  );
  const byState = countBy(rows, (r) => r.state);
  const failedBy = countBy(rows.filter((r) => r.state === "failed"), (r) => `${r.type} ${r.errorCode ?? "(no code)"}`);
  section(
    "outcomes (every job in Postgres)",
    table(["state", "jobs"], [...byState].sort().map(([k, n]) => [k, n])) +
      "\n\n" +
      table(["failed: type and code", "jobs"], [...failedBy].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n])),
  );

  const killed = chaos.killedJobs.map((k) => {
    const r = rows.find((x) => x.id === k.jobId);
    return [k.type, k.host, k.jobId, r ? `${r.state}${r.errorCode ? ` ${r.errorCode}` : ""}` : "MISSING"];
  });
  section("jobs whose worker was killed", table(["type", "host", "job", "final"], killed));

  const ops = [...stats.outcomes].sort(([a], [b]) => a.localeCompare(b));
  section(
    `requests: ${stats.requests} (${stats.attempts} attempts), answers slower than 5 s: ${stats.slowAnswers}, slowest ${(stats.maxLatencyMs / 1000).toFixed(1)} s`,
    table(["operation", "outcomes"], ops.map(([op, m]) => [op, [...m].map(([k, n]) => `${k}: ${n}`).join(", ")])) +
      "\n\n" +
      table(["attempt retried because", "times"], [...stats.retried].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n])) +
      `\n\nCLI: ${load.cliStats.commands} runs, ${load.cliStats.ok} ok, ${load.cliStats.refused} refused, ${load.cliStats.retried} retried, ${load.cliStats.failed} failed` +
      `\nuploads: ${load.uploads.done} by the load (${load.uploads.resumes} resumed ranges); mid-upload API kills: ${chaos.midUploads.map((u) => `${u.name} → ${u.outcome} after ${u.resumes} resume(s)`).join("; ") || "none"}` +
      (stats.gaveUp.length ? `\ngave up:\n${stats.gaveUp.map((g) => `  +${(g.at / 1000).toFixed(1)}s ${g.op}: ${g.reason}`).join("\n")}` : ""),
  );

  const startRetries = stack.startRetries.map((e) => `  ${e.name} at +${(e.at / 1000).toFixed(1)}s (code ${String(e.code)}): ${e.logTail.split("\n").filter((l) => l.trim()).slice(-1)[0] ?? ""}`);
  section(
    "invariant violations (must all be 0)",
    table(["invariant", "violations"], INVARIANTS.map((i) => [i, findings.violations.filter((x) => x.invariant === i).length])) +
      (findings.violations.length ? `\n\n${findings.violations.map((x) => `[${x.invariant}] ${x.detail}`).join("\n")}` : "") +
      (opts.quiesced ? "" : "\n(quiescence was not reached within its bound: the jobs above never finished)"),
  );
  const suiteErrors = [...load.errors, ...chaos.errors];
  section(
    `warnings: ${findings.warnings.length}`,
    [
      ...findings.warnings,
      ...(startRetries.length ? ["worker starts that exited before registering (retried):", ...startRetries] : []),
      ...(suiteErrors.length ? ["errors in the suite's own actors:", ...suiteErrors.map((e) => `  ${e.split("\n")[0] ?? ""}`)] : []),
    ].join("\n") || "none",
  );
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  section(
    "durations",
    table(["phase", "time"], [
      ["setup", s(durations.setupMs)],
      ["load + chaos", s(durations.loadMs)],
      ["quiescence", s(durations.quiesceMs)],
      ["checks", s(durations.checkMs)],
      ["total", s(durations.totalMs)],
    ]),
  );
  return out.join("\n");
}
