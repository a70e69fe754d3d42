import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { ImageName } from "@iaas/contracts";
import { CliError, EXIT_INTERRUPTED, usageError } from "../CliError.js";
import { imageDetails, imageTable } from "../output/imageView.js";
import { UploadProgress } from "../output/UploadProgress.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";

interface ImportOptions {
  file: string;
  description?: string;
  wait?: boolean;
}

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

/** `iaas image …`: import, list, show, delete. */
export function registerImageCommands(program: Command, ctxOf: ContextFactory): void {
  const image = program.command("image").description("import and manage disk images");

  image
    .command("import")
    .description("upload a qcow2 or raw disk image and import it (checked and converted to qcow2 by a job)")
    .argument("<name>", "image name: letters, digits, '.', '_' or '-'")
    .requiredOption("--file <path>", "the image file to upload (streamed, never read into memory)")
    .option("--description <text>", "a description of the image")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: ImportOptions, command: Command) => {
      await importImage(ctxOf(command), name, opts);
    });

  image
    .command("list")
    .alias("ls")
    .description("list images")
    .action(async (_opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const images = await ctx.client.listImages();
      if (ctx.out.json) ctx.out.printJson({ items: images });
      else ctx.out.line(imageTable(images));
    });

  image
    .command("show")
    .description("show an image")
    .argument("<name>", "image name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getImage(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(imageDetails(found));
    });

  image
    .command("delete")
    .alias("rm")
    .description("delete an image (refused while VMs use it)")
    .argument("<name>", "image name or id")
    .option("--wait", WAIT_HELP)
    .action(async (name: string, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.deleteImage(name), opts.wait === true);
    });
}

/** POST the image record, then stream the file to its upload URL, then report the import job. */
async function importImage(ctx: CommandContext, name: string, opts: ImportOptions): Promise<void> {
  const checked = ImageName.safeParse(name);
  if (!checked.success) throw usageError(`invalid image name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
  const size = await readableFileSize(opts.file);
  const created = await ctx.client.createImage({ name, ...(opts.description === undefined ? {} : { description: opts.description }) });
  const progress = new UploadProgress(ctx.deps.stderr, path.basename(opts.file), size);
  let accepted;
  try {
    accepted = await ctx.client.uploadImageFile(created, opts.file, size, (sent) => progress.update(sent));
  } catch (err) {
    progress.fail();
    if (!(err instanceof CliError) || err.exitCode === EXIT_INTERRUPTED) throw err;
    const cleanup = `image ${name} is left ${created.state}: delete it with \`iaas image delete ${name}\`, then import again`;
    throw new CliError(`uploading ${opts.file} failed: ${err.message}`, {
      exitCode: err.exitCode,
      details: err.details,
      code: err.code,
      status: err.status,
      hint: err.hint === null ? cleanup : `${err.hint}; ${cleanup}`,
    });
  }
  progress.finish();
  await reportAcceptedJob(ctx, accepted, opts.wait === true);
}

/** The file's size, after checking that it is a readable regular file (exit 2 otherwise). */
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
  return info.size;
}
