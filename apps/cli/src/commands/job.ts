import { Option, type Command } from "commander";
import { ExitCode, isTerminalJobState, JobState, JobType, type JobEvent } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { followJob } from "../follow/followJob.js";
import { readEventBacklog } from "../follow/readEventBacklog.js";
import { jobDetails, jobEventLine, jobTable } from "../output/jobView.js";
import { ProgressLines } from "../output/ProgressRenderer.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { followToEnd, jobFailedError, timeoutError, waitForJob } from "./jobOutcome.js";
import { intBetween } from "./optionParsers.js";
import { resolveJobId } from "./resolveJobId.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { printPage } from "./listPaging.js";

interface JobListOptions {
  vm?: string;
  image?: string;
  host?: string;
  state?: JobState;
  type?: JobType;
  limit?: number;
  all?: boolean;
}

const ID_HELP = "job id (or a unique prefix of one, as `iaas job list` shows)";

/** `iaas job …`: list, show, wait, logs, cancel. */
export function registerJobCommands(program: Command, ctxOf: ContextFactory): void {
  const job = program.command("job").description("list, watch and cancel jobs (every change is a job)");

  job
    .command("list")
    .alias("ls")
    .description("list jobs, newest first")
    .option("--vm <name>", "only jobs of this VM (name or id)")
    .option("--image <name>", "only jobs of this image (name or id)")
    .option("--host <host>", "only jobs routed to this host")
    .addOption(new Option("--state <state>", "only jobs in this state").choices(JobState.options))
    .addOption(new Option("--type <type>", "only jobs of this type").choices(JobType.options))
    .option("--limit <n>", "at most this many jobs (1-1000; default 50); with --all, the size of each page", intBetween(1, 1000))
    .option("--all", "list every matching job, page after page")
    .action(async ({ limit, all, ...filter }: JobListOptions, command: Command) => {
      const ctx = ctxOf(command);
      printPage(ctx, await ctx.client.page(ListEndpoints.jobs(filter), { limit, all }), (jobs) => jobTable(jobs, ctx.now()));
    });

  job
    .command("show")
    .description("show a job: state, progress, payload, result, error")
    .argument("<id>", ID_HELP)
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getJob(await resolveJobId(ctx.client, id));
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(jobDetails(found));
    });

  job
    .command("wait")
    .description("follow a job until it finishes, then show what it produced (exit 1 if it failed)")
    .argument("<id>", ID_HELP)
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      await waitForJob(ctx, await ctx.client.getJob(await resolveJobId(ctx.client, id)));
    });

  job
    .command("logs")
    .description("print a job's events: time, type, message or progress")
    .argument("<id>", ID_HELP)
    .option("-f, --follow", "keep printing events until the job is final")
    .action(async (id: string, opts: { follow?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await printJobLogs(ctx, await resolveJobId(ctx.client, id), opts.follow === true);
    });

  job
    .command("cancel")
    .description("cancel a job: a queued one at once; a running import or export is stopped by its worker")
    .argument("<id>", ID_HELP)
    .option("--wait", "follow a job being stopped until it ends cancelled (bounded by --timeout)")
    .action(async (id: string, opts: { wait?: boolean }, command: Command) => {
      await cancelJob(ctxOf(command), id, opts.wait === true);
    });
}

/** `job cancel`: 200 means cancelled; 202 means the worker is stopping it (followed with --wait). */
async function cancelJob(ctx: CommandContext, idOrPrefix: string, wait: boolean): Promise<void> {
  const { job, stopping } = await ctx.client.cancelJob(await resolveJobId(ctx.client, idOrPrefix));
  if (!stopping || !wait) {
    if (ctx.out.json) ctx.out.printJson(job);
    else if (!stopping) ctx.out.line(`job ${job.id} ${job.state}`);
    else ctx.out.line(`cancelling job ${job.id}: the worker is stopping it\nfollow it with: iaas job wait ${job.id}`);
    return;
  }
  if (!ctx.out.json) ctx.out.line(`cancelling job ${job.id}: the worker is stopping it`);
  const final = await followToEnd(ctx, job);
  if (final.state === "cancelled") {
    if (ctx.out.json) ctx.out.printJson(final);
    else ctx.out.line(`job ${final.id} cancelled`);
    return;
  }
  if (final.state === "succeeded") {
    throw new CliError(`job ${final.id} succeeded before it could be stopped`, {
      exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
      hint: `see what it did with: iaas job show ${final.id}`,
    });
  }
  throw jobFailedError(final);
}

/** `job logs`: the events so far, or (with --follow, or for a final job) every event to the end. */
async function printJobLogs(ctx: CommandContext, id: string, follow: boolean): Promise<void> {
  const job = await ctx.client.getJob(id);
  // Transfers report progress many times a second: a line per phase (download, inspect, convert,
  // verify …) and per 10% step is what a reader wants; -o json gets every event.
  const lines = new ProgressLines();
  const print = (event: JobEvent): void => {
    if (ctx.out.json) ctx.out.stdout.write(`${JSON.stringify(event)}\n`);
    else if (event.type !== "progress" || event.progress === null || lines.take(event.progress)) ctx.out.line(jobEventLine(event));
  };
  if (!follow && !isTerminalJobState(job.state)) {
    const end = await readEventBacklog(ctx.client, id, print);
    if (end === "unavailable") ctx.out.note(`the API offers no event stream for job ${id}`);
    if (end !== "end") ctx.out.note(`job ${id} is still ${job.state}; follow it with: iaas job logs ${id} --follow`);
    return;
  }
  const result = await followJob(ctx.client, id, {
    timeoutMs: follow ? ctx.timeoutMs : null,
    onEvent: print,
    onFallback: (reason) => ctx.out.note(`no event stream (${reason}); waiting for the job to finish`),
    reconnectDelaysMs: ctx.deps.reconnectDelaysMs,
  });
  if (result.kind === "timeout") throw timeoutError(id, result.job, ctx.timeoutMs);
  if (result.job.state !== "succeeded") ctx.out.note(`job ${id} ${result.job.state}: ${jobFailedError(result.job).message}`);
}
