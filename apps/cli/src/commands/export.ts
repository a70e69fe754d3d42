import { stat } from "node:fs/promises";
import path from "node:path";
import { Option, type Command } from "commander";
import { z } from "zod";
import { ExitCode, formatSize, ImageFormat, looksLikeUuid, type Export, type Job } from "@iaas/contracts";
import { CliError, EXIT_INTERRUPTED, usageError } from "../CliError.js";
import type { ApiClient } from "../client/ApiClient.js";
import { downloadFile, refuseExisting } from "../client/downloadFile.js";
import { exportDetails, exportTable } from "../output/exportView.js";
import { formatFields } from "../output/formatTable.js";
import { TransferProgress } from "../output/TransferProgress.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { followToEnd, jobFailedError } from "./jobOutcome.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

export interface ExportOptions {
  format: ImageFormat;
  to: string;
  compress?: boolean;
  force?: boolean;
}

const ID_HELP = "export id (or a unique prefix of one, as `iaas export list` shows)";

/** The options of `iaas image export` and `iaas vm export`. */
export function addExportOptions(command: Command): Command {
  return command
    .addOption(new Option("--format <format>", "the format of the file").choices(ImageFormat.options).makeOptionMandatory())
    .requiredOption("--to <path>", "where to save the file (written to PATH.part, renamed when complete and verified)")
    .option("--compress", "compress the qcow2 clusters (qcow2 only)")
    .option("--force", "replace PATH if it exists");
}

/** `iaas export …`: list, show, download, delete. */
export function registerExportCommands(program: Command, ctxOf: ContextFactory): void {
  const exp = program.command("export").description("list, download and delete exported disk files (made by `image export` and `vm export`)");

  addPagingOptions(exp.command("list").alias("ls").description("list exports, newest first"), "exports")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.exports(), pagingOf(opts));
      printPage(ctx, page, (items) => exportTable(items, ctx.now()));
    });

  exp
    .command("show")
    .description("show an export: state, source, format, size, sha256, expiry")
    .argument("<id>", ID_HELP)
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getExport(await resolveExportId(ctx.client, id));
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(exportDetails(found));
    });

  exp
    .command("download")
    .description("download an export's file (resumable; verified against its sha256)")
    .argument("<id>", ID_HELP)
    .requiredOption("--to <path>", "where to save the file")
    .option("--force", "replace PATH if it exists")
    .action(async (id: string, opts: { to: string; force?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await checkDestination(opts.to, opts.force === true);
      const found = await ctx.client.getExport(await resolveExportId(ctx.client, id));
      await downloadExport(ctx, found, opts.to, opts.force === true);
    });

  exp
    .command("delete")
    .alias("rm")
    .description("delete an export and its file")
    .argument("<id>", ID_HELP)
    .action(async (id: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const full = await resolveExportId(ctx.client, id);
      await ctx.client.deleteExport(full);
      if (ctx.out.json) ctx.out.printJson({ id: full, deleted: true });
      else ctx.out.line(`export ${full} deleted`);
    });
}

/**
 * `iaas image export` / `iaas vm export`: asks for the export, follows its job to the end (always;
 * --timeout bounds the wait, exit 4), then downloads the file to `opts.to`.
 */
export async function exportAndDownload(ctx: CommandContext, kind: "image" | "vm", ref: string, opts: ExportOptions): Promise<void> {
  if (opts.compress === true && opts.format !== "qcow2") throw usageError("--compress applies to --format qcow2 only");
  const force = opts.force === true;
  await checkDestination(opts.to, force);
  const body = { format: opts.format, ...(opts.compress === true ? { compress: true } : {}) };
  const accepted = kind === "image" ? await ctx.client.exportImage(ref, body) : await ctx.client.exportVm(ref, body);
  const exportId = accepted.export?.id ?? null;
  const later = exportId === null ? null : `once it is done, download the file with: iaas export download ${exportId} --to ${opts.to}`;
  let final: Job;
  try {
    final = await followToEnd(ctx, accepted.job);
  } catch (err) {
    if (!(err instanceof CliError) || later === null || (err.exitCode !== ExitCode.WAIT_TIMEOUT && err.exitCode !== EXIT_INTERRUPTED)) throw err;
    throw new CliError(err.message, { exitCode: err.exitCode, hint: err.hint === null ? later : `${err.hint}; ${later}` });
  }
  if (final.state !== "succeeded") throw jobFailedError(final);
  const id = exportId ?? exportIdOf(final);
  await downloadExport(ctx, await ctx.client.getExport(id), opts.to, force);
}

/** Downloads a ready export with a progress display, then prints what was saved. */
export async function downloadExport(ctx: CommandContext, exp: Export, to: string, force: boolean): Promise<void> {
  if (exp.state !== "ready" || exp.downloadUrl === null) throw notReadyError(exp);
  const progress = new TransferProgress(ctx.deps.stderr, "download", path.basename(to), exp.sizeBytes);
  let result;
  try {
    result = await downloadFile(ctx.client, {
      url: exp.downloadUrl,
      exportId: exp.id,
      to,
      sizeBytes: exp.sizeBytes,
      sha256: exp.sha256,
      force,
      backoffMs: ctx.deps.transferBackoffMs,
      interrupt: ctx.deps.interrupt,
      onStart: (total, from) => progress.begin(total, from),
      onProgress: (position) => progress.update(position),
      onRetry: (notice) => progress.retry(notice),
      onNote: (text) => progress.note(text),
    });
  } catch (err) {
    progress.fail();
    if (err instanceof CliError && err.exitCode === EXIT_INTERRUPTED) {
      throw new CliError(`download of export ${exp.id} interrupted`, {
        exitCode: EXIT_INTERRUPTED,
        hint: `resume it with: iaas export download ${exp.id} --to ${to}`,
      });
    }
    throw err;
  }
  progress.finish();
  if (ctx.out.json) {
    ctx.out.printJson({ path: result.path, sizeBytes: result.sizeBytes, format: exp.format, compressed: exp.compressed, sha256: result.sha256, verified: result.verified, export: exp });
    return;
  }
  ctx.out.line(
    formatFields([
      ["path", result.path],
      ["size", `${formatSize(result.sizeBytes)} (${result.sizeBytes} bytes)`],
      ["format", exp.compressed ? `${exp.format} (compressed)` : exp.format],
      ["sha256", `${result.sha256}${result.verified ? " (verified)" : " (not verified: the API named no sha256)"}`],
    ]),
  );
}

/** The target must not exist (unless --force) and its directory must (exit 2). */
async function checkDestination(to: string, force: boolean): Promise<void> {
  await refuseExisting(to, force);
  const dir = path.dirname(path.resolve(to));
  const isDir = await stat(dir).then(
    (info) => info.isDirectory(),
    () => false,
  );
  if (!isDir) throw usageError(`cannot save to ${to}: ${dir} is not a directory`);
}

function exportIdOf(job: Job): string {
  const parsed = z.object({ exportId: z.string() }).safeParse(job.result);
  if (!parsed.success) {
    throw new CliError(`job ${job.id} succeeded but names no export`, {
      exitCode: ExitCode.JOB_FAILED,
      hint: "find it with `iaas export list`; the CLI and the API may be different versions",
    });
  }
  return parsed.data.exportId;
}

function notReadyError(exp: Export): CliError {
  switch (exp.state) {
    case "pending":
      return new CliError(`export ${exp.id} is not ready yet`, {
        exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
        hint: `wait for its job with \`iaas job wait ${exp.jobId}\`, then download again`,
      });
    case "failed":
      return new CliError(`export ${exp.id} failed`, { exitCode: ExitCode.JOB_FAILED, hint: `see why with \`iaas job logs ${exp.jobId}\`` });
    case "expired":
    case "ready":
      return new CliError(`export ${exp.id} ${exp.state === "expired" ? "has expired" : "has no download URL"}`, {
        exitCode: ExitCode.NOT_FOUND_OR_CONFLICT,
        hint: `export again: \`iaas ${exp.source.type} export ${exp.source.name} --format ${exp.format} --to PATH\``,
      });
  }
}

/** A full export id from an id or a unique prefix of one (as `export list` shows). */
async function resolveExportId(client: ApiClient, idOrPrefix: string): Promise<string> {
  const text = idOrPrefix.trim();
  if (text === "") throw usageError("an export id is required", "list exports with `iaas export list`");
  if (looksLikeUuid(text) || !/^[0-9a-f-]{4,}$/i.test(text)) return text;
  const matches = (await client.listExports()).filter((e) => e.id.toLowerCase().startsWith(text.toLowerCase()));
  const [first, second] = matches;
  if (first !== undefined && second === undefined) return first.id;
  if (first === undefined) {
    throw new CliError(`no export id starts with '${text}'`, { exitCode: ExitCode.NOT_FOUND_OR_CONFLICT, hint: "list exports with `iaas export list`" });
  }
  throw new CliError(`export id prefix '${text}' is ambiguous`, {
    exitCode: ExitCode.USAGE,
    details: matches.slice(0, 10).map((e) => `  ${e.id}  ${e.source.type} ${e.source.name} ${e.format}`),
    hint: "give more characters of the id",
  });
}
