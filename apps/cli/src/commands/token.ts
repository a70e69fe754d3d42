import { Option, type Command } from "commander";
import { parseDuration, Role, TokenName } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import { checkProjectRef } from "../config.js";
import { tokenSummary, tokenTable } from "../output/securityView.js";
import type { ContextFactory } from "./CommandContext.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

interface TokenCreateOptions {
  role: Role;
  project?: string;
  expires?: string;
}

const TOKEN_HELP = `
Roles:
  viewer     reads everything in its projects
  operator   also creates, changes and deletes VMs, images, networks and backups
  admin      also manages hosts, projects, quotas, tokens and reads the audit trail

A token with --project sees that project only; without it, it may act in every project (each
request names one with --project / IAAS_PROJECT; default: "default"). The API keeps only a hash of
the secret: it is printed once, by \`token create\`.

Examples:
  iaas token create ci --role operator --project team-a --expires 90d
  iaas token create alice --role admin
  iaas token list
  iaas token revoke ci
`;

const CREATE_HELP = `
The secret is printed once, on stdout (SECRET=$(iaas token create …) keeps it); with -o json as
{"token": {...}, "secret": "..."}. Here --project scopes the token; the project the request acts
in is given before the subcommand (iaas --project P token create …) or in IAAS_PROJECT.

Examples:
  iaas token create ci --role operator --project team-a --expires 90d
  TOKEN=$(iaas token create ci --role operator --project team-a)
`;

/** `iaas token …`: create, list, revoke (admin). */
export function registerTokenCommands(program: Command, ctxOf: ContextFactory): void {
  const token = program.command("token").description("create, list and revoke API tokens (admin)").addHelpText("after", TOKEN_HELP);

  token
    .command("create")
    .description("create an API token and print its secret (shown only this once)")
    .argument("<name>", "token name: letters, digits, '.', '_', '@' or '-' (e.g. the person or system using it)")
    .addOption(new Option("--role <role>", "what the token may do; see Roles in `iaas token --help`").choices(Role.options).makeOptionMandatory())
    .option("--project <name>", "scope the token to this project (it sees nothing else); default: every project")
    .option("--expires <duration>", "expire after this long, e.g. 12h, 30d, 4w (default: never)")
    .addHelpText("after", CREATE_HELP)
    .action(async (name: string, opts: TokenCreateOptions, command: Command) => {
      const checked = TokenName.safeParse(name);
      if (!checked.success) throw usageError(`invalid token name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      const project = opts.project === undefined ? undefined : checkProjectRef(opts.project.trim(), "--project");
      if (opts.expires !== undefined) {
        try {
          if (parseDuration(opts.expires) <= 0) throw new RangeError("a token must live for some time");
        } catch (err) {
          throw usageError(`invalid --expires '${opts.expires}': ${err instanceof Error ? err.message : String(err)}`, "e.g. --expires 30d");
        }
      }
      const ctx = ctxOf(command);
      const created = await ctx.client.createToken({ name, role: opts.role, project, expires: opts.expires });
      if (ctx.out.json) {
        ctx.out.printJson({ token: created.token, secret: created.secret });
        return;
      }
      ctx.out.note(tokenSummary(created.token));
      ctx.out.line(created.secret);
      ctx.out.note("warning: this secret is shown only once: store it now (the API keeps only its hash); use it with `iaas login --token` or IAAS_TOKEN");
    });

  addPagingOptions(token.command("list").alias("ls").description("list API tokens: role, project (* = every project), when created, last used and expiring, state"), "tokens")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.tokens(), pagingOf(opts));
      printPage(ctx, page, (tokens) => tokenTable(tokens, ctx.now()));
    });

  token
    .command("revoke")
    .description("revoke an API token: every request with it is refused from now on (401)")
    .argument("<name>", "token name")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      await ctx.client.revokeToken(name);
      if (ctx.out.json) ctx.out.printJson({ name, revoked: true });
      else ctx.out.line(`token ${name} revoked`);
    });
}
