import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import type { FuzzCase } from "./cases.js";
import type { Outcome } from "./transport.js";

/** What an answer must never show: stack frames, source or install paths, ORM internals. */
export function leakPatterns(extraPaths: readonly string[] = []): [string, RegExp][] {
  const escaped = extraPaths.filter((p) => p !== "").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // Bounded repetitions and a run-start lookbehind: answers echo huge strings, and an unbounded
  // `[\w-]+\.ts` backtracks quadratically over 300 KB of word characters (it froze the run).
  return [
    ["stack frame", /\bat (?:async )?(?:[\w$.<>[\]]{1,200} )?\(?(?:file:\/\/|node:|\/)[^\s)"]{0,500}:\d+:\d+/],
    ["stack frame line", /(?:\n|\\n)\s{0,20}at [\w$.<>]{1,200} \(/],
    ["install path", /\/work\/|node_modules|\/home\/[\w.-]{1,64}\/|\/usr\/(?:local\/)?lib\/node|\/root\//],
    ["source location", /(?<![\w-])[\w-]{1,100}\.(?:ts|js|mjs|cjs):\d+/],
    ["Prisma internals", /Invalid `[\w.]{1,100}\(\)` invocation|PrismaClient\w{0,40}Error|prisma\.\w{1,60}\.\w{1,60}\(/],
    ["JS error name", /\b(?:TypeError|ReferenceError|RangeError|URIError): /],
    ...escaped.map((p): [string, RegExp] => ["server path", new RegExp(p)]),
  ];
}

/** A verdict on one case: what is wrong with its answer, if anything. */
export interface Finding {
  problem: "5xx" | "timeout" | "connection error" | "leak";
  detail: string;
  c: FuzzCase;
  outcome: Outcome;
}

/** The request as text (path, headers, body), to tell a leak from an echo of what was sent. */
function requestText(c: FuzzCase): string {
  const body = c.body ? `${c.body.toString("utf8")}\n${c.body.toString("latin1")}` : "";
  return `${c.path}\n${c.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}\n${c.raw?.bytes ?? ""}\n${body}`;
}

export function check(c: FuzzCase, outcome: Outcome, leaks: readonly [string, RegExp][]): Finding[] {
  const findings: Finding[] = [];
  const fiveXx = outcome.statuses.filter((s) => s >= 500);
  if (fiveXx.length > 0) findings.push({ problem: "5xx", detail: `status ${fiveXx.join(", ")}`, c, outcome });
  if (outcome.timedOut && outcome.status === null && !c.streaming) findings.push({ problem: "timeout", detail: "no answer in time", c, outcome });
  if (outcome.timedOut && outcome.status !== null && !c.streaming) findings.push({ problem: "timeout", detail: `status ${outcome.status} but the body never ended`, c, outcome });
  // A well-formed request must get an answer; a malformed one may just be hung up on.
  if (outcome.error !== null && !c.raw && !outcome.error.startsWith("client refused")) findings.push({ problem: "connection error", detail: outcome.error, c, outcome });
  const sent = requestText(c);
  for (const [name, pattern] of leaks) {
    const match = pattern.exec(outcome.text);
    // What the request itself carried and the answer quotes back (a name, a path) is no leak.
    if (match && !sent.includes(match[0])) findings.push({ problem: "leak", detail: `${name}: ${match[0].slice(0, 120)}`, c, outcome });
  }
  return findings;
}

/** What a finding is about, for grouping: the problem, the status and the trick (not the route). */
function signatureOf(f: Finding): string {
  const trick = f.c.kind === "odd-param" ? `odd-param ${f.c.note.replace(/(^| )\w+=/g, "$1")}` : `${f.c.kind} ${f.c.note}`;
  return `${f.problem} ${f.outcome.statuses.filter((s) => s >= 500).join("/") || f.detail.slice(0, 40)} · ${trick}`;
}

/** Findings grouped by signature: how many, on how many routes, and one case to replay. */
export function findingsTable(findings: readonly Finding[]): string {
  const groups = new Map<string, { count: number; routes: Set<string>; example: number }>();
  for (const f of findings) {
    const key = signatureOf(f);
    const g = groups.get(key) ?? { count: 0, routes: new Set<string>(), example: f.c.index };
    g.count++;
    g.routes.add(f.c.route);
    groups.set(key, g);
  }
  const rows = [...groups.entries()].sort(([, a], [, b]) => b.count - a.count).map(([key, g]) => [key, String(g.count), String(g.routes.size), `#${g.example}`]);
  return table(["finding · trick", "count", "routes", "e.g. case"], rows);
}

/** The label a case's outcome is counted under in the status table. */
function statusLabel(c: FuzzCase, o: Outcome): string {
  if (o.status !== null) return o.timedOut && c.streaming ? `${o.status} (stream cut)` : String(o.status);
  if (o.timedOut) return c.streaming ? "stream cut, no status" : "timeout";
  if (o.error?.startsWith("client refused")) return "refused by client";
  return "closed, no status";
}

/** Counts answers by status and by case kind. */
export class Tally {
  readonly byStatus = new Map<string, number>();
  readonly byKind = new Map<string, Map<string, number>>();
  readonly byRoute = new Map<string, Map<string, number>>();
  total = 0;

  add(c: FuzzCase, o: Outcome): void {
    this.total++;
    const label = statusLabel(c, o);
    this.byStatus.set(label, (this.byStatus.get(label) ?? 0) + 1);
    const cls = o.status === null ? (o.timedOut ? "cut" : "closed") : `${Math.floor(o.status / 100)}xx`;
    for (const [map, key] of [
      [this.byKind, c.kind],
      [this.byRoute, c.route],
    ] as const) {
      const row = map.get(key) ?? new Map<string, number>();
      row.set(cls, (row.get(cls) ?? 0) + 1);
      row.set("total", (row.get("total") ?? 0) + 1);
      map.set(key, row);
    }
  }

  statusTable(): string {
    const rows = [...this.byStatus.entries()].sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }));
    return table(
      ["status", "count", "share"],
      [...rows.map(([label, n]) => [label, String(n), `${((100 * n) / this.total).toFixed(1)}%`]), ["total", String(this.total), "100%"]],
    );
  }

  kindTable(): string {
    const cols = ["2xx", "3xx", "4xx", "5xx", "cut", "closed"];
    const rows = [...this.byKind.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([kind, row]) => [kind, String(row.get("total") ?? 0), ...cols.map((c) => String(row.get(c) ?? 0))]);
    return table(["case kind", "count", ...cols], rows);
  }

  /** Routes never answered 2xx (reached only their refusals): where the generator may need better values. */
  routesWithout2xx(): string[] {
    return [...this.byRoute.entries()].filter(([, row]) => !row.get("2xx")).map(([route]) => route).sort();
  }
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** A finding as a reproduction: the exact request and what came back. */
export function describeFinding(f: Finding, seed: number): string {
  const c = f.c;
  const body = c.body ? (c.body.length > 300 ? `${JSON.stringify(c.body.subarray(0, 300).toString("latin1"))}… (${c.body.length} bytes)` : JSON.stringify(c.body.toString("latin1"))) : "(none)";
  const shown = (s: string) => (s.length > 300 ? `${JSON.stringify(s.slice(0, 300))}… (${s.length} chars)` : JSON.stringify(s));
  const request = c.raw
    ? `raw bytes: ${shown(c.raw.bytes)}${c.raw.halfClose ? " then half-close" : ""}`
    : `${c.method} ${shown(c.path)} as ${c.auth}; headers ${shown(JSON.stringify(c.headers))}; body ${body}`;
  return [
    `[${f.problem}] ${f.detail} — case #${c.index} (${c.kind}: ${c.note}) ${c.route}  [IAAS_FUZZ_SEED=${seed} IAAS_FUZZ_CASE=${c.index}]`,
    `  request:  ${request}`,
    `  response: ${shown(statusAndBody(f.outcome.text))}`,
  ].join("\n");
}

/** The status line and the body of an answer (the headers are the same security headers every time). */
function statusAndBody(text: string): string {
  const statusLine = text.split(/\r?\n/, 1)[0] ?? "";
  const bodyAt = /\r?\n\r?\n/.exec(text);
  return bodyAt ? `${statusLine} … ${text.slice(bodyAt.index + bodyAt[0].length, bodyAt.index + bodyAt[0].length + 700)}` : text.slice(0, 700);
}

let gcFn: (() => void) | undefined;

/** Full garbage collection (exposes V8's gc at run time, so no --expose-gc flag is needed). */
function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  gcFn();
  gcFn();
}

export interface MemorySample {
  heapUsed: number;
  rss: number;
  external: number;
}

/** Memory after a full collection. */
export async function memoryAfterGc(): Promise<MemorySample> {
  // Let sockets and timers of finished requests close before collecting.
  await new Promise((r) => setTimeout(r, 100));
  collectGarbage();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}

export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
