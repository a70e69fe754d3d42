import { z } from "zod";
import { ExitCode, formatSize, isTerminalJobState, JobCatalog, JobResults, type Job } from "@iaas/contracts";
import { CliError, EXIT_INTERRUPTED } from "../CliError.js";
import type { JobAccepted } from "@iaas/contracts";
import { followJob } from "../follow/followJob.js";
import { formatDuration, jobTarget, shortId } from "../output/format.js";
import { exportDetails } from "../output/exportView.js";
import { imageDetails } from "../output/imageView.js";
import { jobDetails } from "../output/jobView.js";
import { createProgressRenderer } from "../output/ProgressRenderer.js";
import { vmDetails } from "../output/vmView.js";
import type { CommandContext } from "./CommandContext.js";
import { vmHostNames } from "./vmHostNames.js";

/**
 * After a request made a job: without --wait, say how to follow it; with --wait, follow it to
 * the end and report the outcome.
 */
export async function reportAcceptedJob(ctx: CommandContext, accepted: JobAccepted, wait: boolean): Promise<void> {
  if (wait) {
    await waitForJob(ctx, accepted.job);
    return;
  }
  if (ctx.out.json) {
    ctx.out.printJson(accepted);
    return;
  }
  const job = accepted.job;
  ctx.out.line(`job ${job.id} ${job.state}: ${JobCatalog[job.type].title} (${jobTarget(job)})`);
  ctx.out.line(`follow it with: iaas job wait ${job.id}`);
}

/**
 * Follows a job (SSE, else long-poll) with a progress display on stderr, then reports the
 * outcome: the resulting resource (or the job JSON with -o json) and exit 0; `error:`/`hint:`
 * and exit 1 for a failed or cancelled job; exit 4 when --timeout passes first.
 */
export async function waitForJob(ctx: CommandContext, job: Job): Promise<void> {
  let final = await followToEnd(ctx, job);
  // A job whose work goes on on another host (a clone to another host) names the job that continues it.
  for (let next = nextJobOf(final); next !== null; next = nextJobOf(final)) {
    ctx.deps.stderr.write(`job ${final.id} done; continued by job ${next}\n`);
    final = await followToEnd(ctx, await ctx.client.getJob(next));
  }
  await reportFinalJob(ctx, final);
}

/** The job a finished job names as continuing its work on another host (`result.nextJobId`), or null. */
export function nextJobOf(job: Job): string | null {
  const next = job.state === "succeeded" ? job.result?.["nextJobId"] : undefined;
  return typeof next === "string" ? next : null;
}

/**
 * Follows a job until it is final, with a progress display on stderr, and answers the final job
 * (whatever its state). Throws exit 4 when --timeout passes first, 130 on Ctrl-C.
 */
export async function followToEnd(ctx: CommandContext, job: Job, timeoutMs: number | null = ctx.timeoutMs): Promise<Job> {
  if (isTerminalJobState(job.state)) return job;
  const renderer = createProgressRenderer(ctx.deps.stderr, { animate: ctx.deps.animate });
  renderer.start(job);
  let result;
  try {
    result = await followJob(ctx.client, job.id, {
      timeoutMs,
      onEvent: (event) => renderer.event(event),
      onJob: (polled) => renderer.job(polled),
      onFallback: (reason) => renderer.note(`no live event stream (${reason}); polling the job instead`),
      reconnectDelaysMs: ctx.deps.reconnectDelaysMs,
    });
  } catch (err) {
    renderer.stop();
    if (err instanceof CliError && err.exitCode === EXIT_INTERRUPTED) {
      throw new CliError(`stopped waiting; job ${job.id} keeps running; re-attach with: iaas job wait ${job.id}`, {
        exitCode: EXIT_INTERRUPTED,
      });
    }
    throw err;
  }
  if (result.kind === "timeout") {
    renderer.stop();
    throw timeoutError(job.id, result.job, timeoutMs);
  }
  renderer.finish(result.job);
  return result.job;
}

/** Reports a final job: its result on success, an error (exit 1) otherwise. */
export async function reportFinalJob(ctx: CommandContext, job: Job): Promise<void> {
  if (ctx.out.json) ctx.out.printJson(job);
  if (job.state !== "succeeded") throw jobFailedError(job);
  if (!ctx.out.json) await printJobResult(ctx, job);
}

export function jobFailedError(job: Job): CliError {
  const what = `job ${shortId(job.id)} (${job.type} ${jobTarget(job)})`;
  const message =
    job.state === "cancelled"
      ? `${what} was cancelled${job.error === null ? "" : `: ${job.error.message}`}`
      : (job.error?.message ?? `${what} failed`);
  return new CliError(message, {
    exitCode: ExitCode.JOB_FAILED,
    hint: job.error?.hint ?? `see what happened with: iaas job logs ${job.id}`,
    code: job.error?.code ?? null,
  });
}

export function timeoutError(jobId: string, job: Job | null, timeoutMs: number | null): CliError {
  const state = job === null ? "" : `it was ${job.state}${job.progress === null ? "" : ` (${job.progress.phase} ${Math.floor(job.progress.percent)}%)`} `;
  const after = timeoutMs === null ? "" : `after --timeout ${timeoutMs / 1000}s`;
  return new CliError(`job ${jobId} is still running; re-attach with: iaas job wait ${jobId}`, {
    exitCode: ExitCode.WAIT_TIMEOUT,
    hint: `${state}${after}`.trim() || null,
  });
}

/** What a succeeded job produced: the VM or image as it is now, or a line for a deletion. */
async function printJobResult(ctx: CommandContext, job: Job): Promise<void> {
  switch (job.type) {
    case "vm.create":
    case "vm.start":
    case "vm.stop":
    case "vm.reboot":
    case "vm.nic.add":
    case "vm.nic.remove":
    case "vm.port.add":
    case "vm.port.remove":
    case "vm.migrate": {
      const ref = job.vmId ?? job.targetName;
      if (ref === null) break;
      const vm = await ctx.client.getVm(ref);
      ctx.out.line(vmDetails(vm, await vmHostNames(ctx.client, [vm]), ctx.now()));
      return;
    }
    case "vm.probe": {
      const result = JobResults["vm.probe"].safeParse(job.result);
      if (!result.success) break;
      const { port, ip, elapsedMs } = result.data;
      ctx.out.line(`${job.targetName ?? job.vmId ?? "vm"}: port ${port} answers at ${ip} (after ${formatDuration(elapsedMs)})`);
      return;
    }
    case "vm.snapshot.create":
    case "vm.snapshot.restore":
    case "vm.snapshot.delete": {
      const line = snapshotResultLine(job);
      if (line === null) break;
      ctx.out.line(line);
      return;
    }
    case "vm.backup":
    case "vm.backup.restore":
    case "backup.verify":
    case "backup.delete": {
      const lines = backupResultLines(job);
      if (lines === null) break;
      for (const line of lines) ctx.out.line(line);
      return;
    }
    case "image.verify": {
      const result = JobResults["image.verify"].safeParse(job.result);
      if (result.success) ctx.out.line(`image ${job.targetName ?? result.data.imageId}: stored file whole (sha256 ${result.data.sha256}); the image is ${result.data.state}`);
      const ref = job.imageId ?? job.targetName;
      if (ref === null) break;
      ctx.out.line(imageDetails(await ctx.client.getImage(ref)));
      return;
    }
    case "image.import": {
      const result = JobResults["image.import"].safeParse(job.result);
      const reused = result.success ? result.data.deduplicatedTo : undefined;
      if (reused !== undefined) ctx.out.line(`the content is already stored as image ${reused.name} (${reused.id}); no new image was stored`);
      const ref = reused?.id ?? job.imageId ?? job.targetName;
      if (ref === null) break;
      ctx.out.line(imageDetails(await ctx.client.getImage(ref)));
      return;
    }
    case "image.export":
    case "vm.export": {
      const exportId = z.object({ exportId: z.string() }).safeParse(job.result);
      if (!exportId.success) break;
      ctx.out.line(exportDetails(await ctx.client.getExport(exportId.data.exportId)));
      ctx.out.line(`download it with: iaas export download ${exportId.data.exportId} --to PATH`);
      return;
    }
    case "vm.delete":
      ctx.out.line(
        job.payload["force"] === true
          ? `vm ${job.targetName ?? job.vmId ?? ""} removed from the records; its files on lost host ${job.hostId ?? "?"} are removed when that host's worker comes back`
          : `vm ${job.targetName ?? job.vmId ?? ""} deleted`,
      );
      return;
    case "image.delete":
      ctx.out.line(`image ${job.targetName ?? job.imageId ?? ""} deleted`);
      return;
    case "bench.noop":
      break;
  }
  ctx.out.line(jobDetails(job));
}

/** "vm web1: snapshot before-upgrade taken", "… restored (the VM is running)", "… deleted"; null without a result. */
function snapshotResultLine(job: Job): string | null {
  const vm = `vm ${job.targetName ?? job.vmId ?? "-"}`;
  switch (job.type) {
    case "vm.snapshot.create": {
      const result = JobResults["vm.snapshot.create"].safeParse(job.result);
      return result.success ? `${vm}: snapshot ${result.data.name} taken (list them with: iaas vm snapshot list ${job.targetName ?? result.data.vmId})` : null;
    }
    case "vm.snapshot.restore": {
      const result = JobResults["vm.snapshot.restore"].safeParse(job.result);
      return result.success ? `${vm}: snapshot ${result.data.name} restored; the VM is ${result.data.state}` : null;
    }
    case "vm.snapshot.delete": {
      const result = JobResults["vm.snapshot.delete"].safeParse(job.result);
      return result.success ? `${vm}: snapshot ${result.data.name} deleted` : null;
    }
    default:
      return null;
  }
}

/** What a finished backup job did, as lines: the backup made (and what retention removed), restored, verified or deleted; null without a result. */
function backupResultLines(job: Job): string[] | null {
  const vm = `vm ${job.targetName ?? job.vmId ?? "-"}`;
  switch (job.type) {
    case "vm.backup": {
      const result = JobResults["vm.backup"].safeParse(job.result);
      if (!result.success) return null;
      const r = result.data;
      if (r.imageId !== null) return [`${vm}: disk saved as image ${r.imageId} (${formatSize(r.sizeBytes)})`, `see it with: iaas image show ${r.imageId}`];
      const lines = [`${vm}: ${r.kind} backup ${r.backupId ?? "-"} done${r.live ? " (live)" : ""}: ${formatSize(r.sizeBytes)}, ${formatSize(r.bytesCopied)} copied`];
      if (r.pruned.length > 0) lines.push(`retention removed ${r.pruned.length} older backup${r.pruned.length === 1 ? "" : "s"}: ${r.pruned.join(", ")}`);
      return lines;
    }
    case "vm.backup.restore": {
      const result = JobResults["vm.backup.restore"].safeParse(job.result);
      return result.success ? [`${vm}: restored from backup ${result.data.backupId}; the VM is ${result.data.state}`] : null;
    }
    case "backup.verify": {
      const result = JobResults["backup.verify"].safeParse(job.result);
      if (!result.success) return null;
      const { backupId, chain } = result.data;
      const what = chain.length === 1 ? "it reads back with its recorded sha256" : `the ${chain.length} backups of its chain read back with their recorded sha256`;
      return [`backup ${backupId} verified: ${what}`, ...chain.map((c) => `  ${c.id}  ${formatSize(c.sizeBytes)}  ${c.sha256}`)];
    }
    case "backup.delete": {
      const result = JobResults["backup.delete"].safeParse(job.result);
      return result.success ? [`backup ${result.data.backupId} deleted`] : null;
    }
    default:
      return null;
  }
}
