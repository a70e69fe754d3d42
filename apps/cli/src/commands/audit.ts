import { InvalidArgumentError, Option, type Command } from "commander";
import { parseDuration, type AuditEvent } from "@iaas/contracts";
import { auditTable } from "../output/securityView.js";
import type { ContextFactory } from "./CommandContext.js";
import { intBetween } from "./optionParsers.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { printPage } from "./listPaging.js";

interface AuditListOptions {
  actor?: string;
  project?: string;
  since?: string;
  outcome?: AuditEvent["outcome"];
  limit?: number;
  all?: boolean;
}

const AUDIT_HELP = `
Every API request is recorded: who (the token's name), from where, in which project, what it
asked (method, path, action) and how it ended: allowed, denied (401/403/429) or failed. Events
are listed newest first. Here --project filters the events; it is not the project to act in.

Examples:
  iaas audit list --since 1h
  iaas audit list --outcome denied --since 7d
  iaas audit list --actor ci --project team-a --limit 20
  iaas audit list --since 2026-12-01T00:00:00Z -o json
`;

/** `--since`: an ISO time ("2026-12-01", "2026-12-01T10:00:00Z") or a duration back from now ("1h", "7d"). */
function since(value: string): string {
  const text = value.trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(Date.parse(text))) return text;
  try {
    parseDuration(text);
    return text;
  } catch {
    throw new InvalidArgumentError("expected a duration back from now (30m, 1h, 7d) or an ISO time (2026-12-01T00:00:00Z).");
  }
}

/** `iaas audit list` (admin). */
export function registerAuditCommands(program: Command, ctxOf: ContextFactory): void {
  const audit = program.command("audit").description("read the audit trail: who did what, where, and how it ended (admin)");

  audit
    .command("list")
    .alias("ls")
    .description("list audit events, newest first: time, actor, project, outcome, status, action, path, source (and job)")
    .option("--actor <token>", "only requests made with this token (its name)")
    .option("--project <name>", "only events in this project")
    .option("--since <when>", "only events since a duration ago (1h, 7d) or an ISO time", since)
    .addOption(new Option("--outcome <outcome>", "only events that ended so").choices(["allowed", "denied", "failed"]))
    .option("--limit <n>", "at most this many events (1-1000; default 100); with --all, the size of each page", intBetween(1, 1000))
    .option("--all", "list every matching event, page after page")
    .addHelpText("after", AUDIT_HELP)
    .action(async (opts: AuditListOptions, command: Command) => {
      const ctx = ctxOf(command);
      const list = ListEndpoints.audit({ actor: opts.actor, project: opts.project, since: opts.since, outcome: opts.outcome });
      printPage(ctx, await ctx.client.page(list, { limit: opts.limit, all: opts.all }), auditTable);
    });
}
