import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { ExitCode, formatSize, ImageName, type Image, type ImageFormat } from "@iaas/contracts";
import { CliError, EXIT_INTERRUPTED, usageError } from "../CliError.js";
import type { ImageCreated, ImageCreateInput } from "../client/ApiClient.js";
import { hashFile } from "../client/hashFile.js";
import type { JobAccepted } from "@iaas/contracts";
import { uploadImageFile } from "../client/uploadFile.js";
import { TransferProgress } from "../output/TransferProgress.js";
import type { CommandContext } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";

export interface ImportOptions {
  file?: string;
  url?: string;
  sourcePath?: string;
  format?: ImageFormat;
  sha256?: string;
  dedupe?: boolean;
  label?: Record<string, string>;
  description?: string;
  host?: string;
  wait?: boolean;
}

/**
 * `iaas image import`: with --url or --source-path a worker fetches the content (a job at once);
 * with --file the image is created, then the file is uploaded resumably. A re-run after a broken
 * upload resumes into the image it left behind.
 */
export async function importImage(ctx: CommandContext, name: string, opts: ImportOptions): Promise<void> {
  const checked = ImageName.safeParse(name);
  if (!checked.success) throw usageError(`invalid image name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
  const sources = [opts.file, opts.url, opts.sourcePath].filter((s) => s !== undefined);
  if (sources.length !== 1) {
    throw usageError(
      sources.length === 0 ? "say where the image comes from" : "give only one source",
      "use exactly one of --file PATH (upload), --url URL (the worker downloads it) or --source-path PATH (a file on the host)",
    );
  }
  const wait = opts.wait === true;
  const request: ImageCreateInput = {
    name,
    ...(opts.description === undefined ? {} : { description: opts.description }),
    ...(opts.label === undefined || Object.keys(opts.label).length === 0 ? {} : { labels: opts.label }),
    ...(opts.format === undefined ? {} : { format: opts.format }),
    ...(opts.sha256 === undefined ? {} : { sha256: opts.sha256 }),
    ...(opts.dedupe === true ? { dedupe: true } : {}),
  };
  if (opts.host !== undefined && opts.file !== undefined) {
    throw usageError("--host applies to --url and --source-path imports", "drop --host: an upload goes to the API");
  }
  if (opts.file === undefined) {
    if (opts.host !== undefined) request.host = opts.host;
    const source = opts.url !== undefined ? { type: "url" as const, url: opts.url } : { type: "path" as const, path: opts.sourcePath ?? "" };
    await reportCreated(ctx, await ctx.client.createImage({ ...request, source }), wait);
    return;
  }
  const file = opts.file;
  const size = await readableFileSize(file);
  if (opts.sha256 === undefined && opts.dedupe === true) request.sha256 = await sha256Of(ctx, file);
  let image: Image;
  try {
    const created = await ctx.client.createImage({ ...request, source: { type: "upload", size } });
    if (created.kind !== "upload") {
      await reportCreated(ctx, created, wait);
      return;
    }
    image = created.image;
  } catch (err) {
    image = await leftBehind(ctx, name, size, err);
    ctx.out.note(`resuming upload of ${name} at ${formatSize(image.upload?.offset ?? 0)} of ${formatSize(size)}`);
  }
  await reportAcceptedJob(ctx, await upload(ctx, image, file, size), wait);
}

/** What POST /v1/images answered, other than an image awaiting its upload. */
async function reportCreated(ctx: CommandContext, created: ImageCreated, wait: boolean): Promise<void> {
  switch (created.kind) {
    case "deduplicated":
      if (ctx.out.json) ctx.out.printJson({ image: created.image, deduplicated: true });
      else ctx.out.line(`the content is already stored as image ${created.image.name} (${created.image.id}); nothing was imported`);
      return;
    case "job":
      await reportAcceptedJob(ctx, created.accepted, wait);
      return;
    case "upload":
      throw new CliError(`the API made image ${created.image.name} wait for an upload, but no file was given`, {
        exitCode: ExitCode.JOB_FAILED,
        hint: `delete it with \`iaas image delete ${created.image.name}\`; the API may be older than this CLI`,
      });
  }
}

/**
 * After `409 NAME_TAKEN`: the image a broken upload of this command left behind, when it still
 * waits for the rest of a file of this size; otherwise the original error.
 */
async function leftBehind(ctx: CommandContext, name: string, size: number, err: unknown): Promise<Image> {
  if (!(err instanceof CliError) || err.code !== "NAME_TAKEN") throw err;
  let existing: Image;
  try {
    existing = await ctx.client.getImage(name);
  } catch {
    throw err;
  }
  const resumable = existing.state === "importing" && existing.uploadUrl !== null && existing.upload !== null && existing.upload.length === size;
  if (!resumable) throw err;
  return existing;
}

/** Uploads with a progress display; a failure says how to resume. */
async function upload(ctx: CommandContext, image: Image, file: string, size: number): Promise<JobAccepted> {
  const progress = new TransferProgress(ctx.deps.stderr, "upload", path.basename(file), size);
  try {
    const accepted = await uploadImageFile(ctx.client, {
      image,
      file,
      size,
      backoffMs: ctx.deps.transferBackoffMs,
      interrupt: ctx.deps.interrupt,
      onStart: (from) => progress.begin(size, from),
      onProgress: (position) => progress.update(position),
      onRetry: (notice) => progress.retry(notice),
    });
    progress.finish();
    return accepted;
  } catch (err) {
    progress.fail();
    if (!(err instanceof CliError)) throw err;
    const resume = `the API keeps the bytes it received: run the same command again to resume (or give up with \`iaas image delete ${image.name}\`)`;
    const interrupted = err.exitCode === EXIT_INTERRUPTED;
    throw new CliError(interrupted ? `upload of ${file} interrupted` : `uploading ${file} failed: ${err.message}`, {
      exitCode: err.exitCode,
      details: err.details,
      code: err.code,
      status: err.status,
      hint: err.hint === null || interrupted ? resume : `${err.hint}; ${resume}`,
    });
  }
}

/** The sha256 of the local file, so the API can find stored content without an upload (--dedupe). */
async function sha256Of(ctx: CommandContext, file: string): Promise<string> {
  ctx.out.note(`computing the sha256 of ${file} (for --dedupe)`);
  const hash = createHash("sha256");
  await hashFile(file, hash);
  return hash.digest("hex");
}

/** The file's size, after checking that it is a readable, non-empty regular file (exit 2 otherwise). */
async function readableFileSize(file: string): Promise<number> {
  let info;
  try {
    info = await stat(file);
    await access(file, constants.R_OK);
  } catch (err) {
    const code = err instanceof Error && "code" in err ? String(err.code) : "";
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable" : `cannot be read (${String(err)})`;
    throw usageError(`image file ${file} ${why}`);
  }
  if (!info.isFile()) throw usageError(`image file ${file} is not a regular file`);
  if (info.size === 0) throw usageError(`image file ${file} is empty`);
  return info.size;
}
