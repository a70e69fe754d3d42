import { Option, type Command } from "commander";
import { isTerminalJobState, JobState, JobType, type JobEvent } from "@iaas/contracts";
import { followJob } from "../follow/followJob.js";
import { readEventBacklog } from "../follow/readEventBacklog.js";
import { jobDetails, jobEventLine, jobTable } from "../output/jobView.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { jobFailedError, timeoutError, waitForJob } from "./jobOutcome.js";
import { intBetween } from "./optionParsers.js";
import { resolveJobId } from "./resolveJobId.js";

interface JobListOptions {
  vm?: string;
  image?: string;
  host?: string;
  state?: JobState;
  type?: JobType;
  limit?: number;
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
    .option("--limit <n>", "at most this many jobs (1-1000; default 50)", intBetween(1, 1000))
    .action(async (opts: JobListOptions, command: Command) => {
      const ctx = ctxOf(command);
      const jobs = await ctx.client.listJobs(opts);
      if (ctx.out.json) ctx.out.printJson({ items: jobs });
      else ctx.out.line(jobTable(jobs, ctx.now()));
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
    .description("cancel a job that has not started yet")
    .argument("<id>", ID_HELP)
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const cancelled = await ctx.client.cancelJob(await resolveJobId(ctx.client, id));
      if (ctx.out.json) ctx.out.printJson(cancelled);
      else ctx.out.line(`job ${cancelled.id} ${cancelled.state}`);
    });
}

/** `job logs`: the events so far, or (with --follow, or for a final job) every event to the end. */
async function printJobLogs(ctx: CommandContext, id: string, follow: boolean): Promise<void> {
  const job = await ctx.client.getJob(id);
  const print = (event: JobEvent): void => {
    if (ctx.out.json) ctx.out.stdout.write(`${JSON.stringify(event)}\n`);
    else ctx.out.line(jobEventLine(event));
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
