import { Option, type Command } from "commander";
import { ImageFormat } from "@iaas/contracts";
import { imageDetails, imageTable } from "../output/imageView.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { addExportOptions, exportAndDownload, type ExportOptions } from "./export.js";
import { importImage, type ImportOptions } from "./imageImport.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { labelInto, sha256Hex } from "./optionParsers.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

const IMPORT_HELP = `
Sources (exactly one):
  --file PATH          upload a local file; resumable: run the same command again after a
                       broken upload and it continues where the API stopped
  --url URL            the worker downloads it (http/https, subject to the API's URL policy)
  --source-path PATH   a file already on the hypervisor host, under its import directory

Here --url names the image's source; give the API's URL before the subcommand
(iaas --url http://api:8080 image import …) or in IAAS_URL.

qcow2, raw, vmdk, vdi, vhdx and vpc (VHD) are accepted, also gzip- or xz-compressed (.gz, .xz):
the API decompresses, checks and converts them to qcow2.

Examples:
  iaas image import deb12 --file debian-12.qcow2 --wait
  iaas image import alpine --url https://example.org/alpine.qcow2 --sha256 <hex> --dedupe --wait
  iaas image import win --source-path /srv/iaas/import/win.vhdx --format vhdx --label os=windows
`;

/** `iaas image …`: import, list, show, export, verify, set-public, set-private, delete. */
export function registerImageCommands(program: Command, ctxOf: ContextFactory): void {
  const image = program.command("image").description("import, export and manage disk images");

  image
    .command("import")
    .description("import a disk image from a local file, a URL or a file on the host (checked and converted to qcow2 by a job)")
    .argument("<name>", "image name: letters, digits, '.', '_' or '-'")
    .option("--file <path>", "a local image file to upload (streamed, resumable)")
    .option("--url <url>", "an http(s) URL the worker downloads the image from")
    .option("--source-path <path>", "an image file on the hypervisor host, under its import directory")
    .addOption(new Option("--format <format>", "the format the content must be (refused if it is not)").choices(ImageFormat.options))
    .option("--sha256 <hex>", "the sha256 the content must have, as delivered (before decompression)", sha256Hex)
    .option("--dedupe", "reuse an image already stored with the same content instead of storing it twice")
    .option("--label <key=value>", "a label for the image (repeatable)", labelInto)
    .option("--description <text>", "a description of the image")
    .option("--host <host>", "with --source-path or --url: the host whose worker fetches the content")
    .option("--wait", WAIT_HELP)
    .addHelpText("after", IMPORT_HELP)
    .action(async (name: string, opts: ImportOptions, command: Command) => {
      await importImage(ctxOf(command), name, opts);
    });

  addPagingOptions(image.command("list").alias("ls").description("list images"), "images")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.images(), pagingOf(opts));
      printPage(ctx, page, imageTable);
    });

  image
    .command("show")
    .description("show an image: origin, formats, sizes, sha256, labels, upload progress")
    .argument("<name>", "image name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getImage(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(imageDetails(found));
    });

  addExportOptions(
    image
      .command("export")
      .description("convert an image to a format and download it (follows the export job, then downloads resumably)")
      .argument("<name>", "image name or id"),
  ).action(async (name: string, opts: ExportOptions, command: Command) => {
    await exportAndDownload(ctxOf(command), "image", name, opts);
  });

  image
    .command("verify")
    .description("check an image's stored file (exists, size, sha256, qemu-img check): ready again if it is whole, else error with the reason")
    .argument("<name>", "image name or id")
    .option("--wait", WAIT_HELP)
    .addHelpText(
      "after",
      `
Workers check every ready image's file (exists, recorded size) at start and every
IAAS_STORE_CHECK_INTERVAL_SECONDS; a missing or changed one turns the image to state error, and
VMs cannot be created from it. Restore the file, then verify it to make the image ready again.

Examples:
  iaas image verify deb12 --wait
`,
    )
    .action(async (name: string, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.verifyImage(name), opts.wait === true);
    });

  image
    .command("set-public")
    .description("make an image public: every project may create VMs from it (admin)")
    .argument("<name>", "image name or id")
    .addHelpText("after", "\nExamples:\n  iaas image set-public deb12\n  iaas image set-private deb12\n")
    .action(async (name: string, _opts: object, command: Command) => {
      await setPublic(ctxOf(command), name, true);
    });

  image
    .command("set-private")
    .description("make an image private again: only its own project sees it (admin)")
    .argument("<name>", "image name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      await setPublic(ctxOf(command), name, false);
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

/** PATCH /v1/images/:ref {public}. */
async function setPublic(ctx: CommandContext, name: string, isPublic: boolean): Promise<void> {
  const image = await ctx.client.setImagePublic(name, isPublic);
  if (ctx.out.json) ctx.out.printJson({ ...image, public: isPublic });
  else ctx.out.line(isPublic ? `image ${image.name} is public: every project may use it` : `image ${image.name} is private: only its own project sees it`);
}
