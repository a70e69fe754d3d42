import { Option, type Command } from "commander";
import { MAX_PAGE_LIMIT } from "@iaas/contracts";
import type { ListPage, Paging } from "../client/paging.js";
import type { CommandContext } from "./CommandContext.js";
import { intBetween } from "./optionParsers.js";

/** `--limit N` and `--all` on a list command; `what` names the items ("VMs"), `defaultLimit` the API's page size. */
export function addPagingOptions(command: Command, what: string, defaultLimit = 100): Command {
  return command
    .addOption(new Option("--limit <n>", `at most this many ${what} (1-${MAX_PAGE_LIMIT}; default ${defaultLimit}); with --all, the size of each page`).argParser(intBetween(1, MAX_PAGE_LIMIT)))
    .addOption(new Option("--all", `list every ${what.replace(/s$/, "")}, page after page`));
}

/** The paging the options ask for. */
export function pagingOf(opts: { limit?: number; all?: boolean }): Paging {
  return { limit: opts.limit, all: opts.all === true };
}

/**
 * Prints a page: `-o json|yaml` as `{items}` (and `nextCursor` when more follow), a table
 * otherwise, with a note on stderr when the list goes on.
 */
export function printPage<T>(ctx: CommandContext, page: ListPage<T>, table: (items: T[]) => string): void {
  if (ctx.out.json) ctx.out.printJson(page.nextCursor === null ? { items: page.items } : { items: page.items, nextCursor: page.nextCursor });
  else ctx.out.line(table(page.items));
  if (page.nextCursor !== null) ctx.out.note(`(more after these ${page.items.length}: add --all to list them all, or a larger --limit)`);
}
