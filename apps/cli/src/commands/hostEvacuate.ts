import { ExitCode, type Host, type Job } from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { evacuationOutcome, evacuationView } from "../output/evacuationView.js";
import { hostNames } from "../output/vmView.js";
import type { CommandContext } from "./CommandContext.js";
import { followToEnd, nextJobOf } from "./jobOutcome.js";

export const EVACUATE_HELP = `
Evacuate drains the host, then moves each VM on it to another host (placement decides):
  - host online: stopped VMs are migrated (their disk goes through the shared image store);
    running VMs are skipped: stop them first.
  - host lost (offline past IAAS_HOST_LOST_SECONDS): each VM is recreated from its newest ready
    backup, keeping its id, name, MACs and addresses; a VM without a backup is skipped (delete
    its records with \`iaas vm delete NAME --force\`, or wait for the host).
  - host offline but not lost yet: refused; its disks may come back.
The old host's files are removed by its worker when it runs again.
`;

/** `iaas host evacuate H [--dry-run] [--wait]`: POST /v1/hosts/:id/evacuate, then a table; --wait follows every job. */
export async function evacuateHost(ctx: CommandContext, host: Host, opts: { dryRun?: boolean; wait?: boolean }, hosts: readonly Host[]): Promise<void> {
  const evacuation = await ctx.client.evacuateHost(host.id, opts.dryRun === true);
  const names = hostNames(hosts);
  if (opts.wait !== true || evacuation.dryRun) {
    if (ctx.out.json) ctx.out.printJson(evacuation);
    else ctx.out.line(evacuationView(evacuation, names));
    return;
  }
  if (!ctx.out.json) ctx.out.line(evacuationView(evacuation, names));
  const finals: { vmName: string; job: Job }[] = [];
  for (const item of evacuation.items) {
    if (item.jobId === null) continue;
    let final = await followToEnd(ctx, await ctx.client.getJob(item.jobId));
    for (let next = nextJobOf(final); next !== null; next = nextJobOf(final)) final = await followToEnd(ctx, await ctx.client.getJob(next));
    finals.push({ vmName: item.vmName, job: final });
  }
  if (ctx.out.json) ctx.out.printJson({ ...evacuation, jobs: finals.map((f) => f.job) });
  else if (finals.length > 0) ctx.out.line(evacuationOutcome(finals));
  const failed = finals.filter((f) => f.job.state !== "succeeded");
  if (failed.length > 0) {
    throw new CliError(`${failed.length} of ${finals.length} VMs did not move: ${failed.map((f) => f.vmName).join(", ")}`, {
      exitCode: ExitCode.JOB_FAILED,
      hint: `see why with: iaas job logs ${failed[0]?.job.id ?? ""}`,
    });
  }
}
