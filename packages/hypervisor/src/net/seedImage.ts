import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { invalid, shown } from "./invalid.js";
import { findExecutable, run } from "../run.js";

// A NoCloud seed: a small FAT image labelled CIDATA holding meta-data, user-data and
// network-config, built without root (mkfs.vfat -C creates the image file, mcopy fills it).

const FILE_NAME_RE = /^[a-z](?:[a-z-]{0,62}[a-z])?$/;
const MIN_IMAGE_KIB = 1024;

/** mkfs.vfat lives in /usr/sbin, which an unprivileged user's PATH often lacks. */
function defaultMkfs(): string {
  return findExecutable("mkfs.vfat") ?? findExecutable("mkfs.vfat", "/usr/sbin:/sbin") ?? "mkfs.vfat";
}

/** Image size in KiB: 1 MiB, or room for the files twice over plus FAT overhead when they are larger. */
function imageKib(files: Record<string, string>): number {
  const bytes = Object.values(files).reduce((sum, text) => sum + Buffer.byteLength(text, "utf8"), 0);
  return Math.max(MIN_IMAGE_KIB, Math.ceil((bytes * 2) / 1024) + 256);
}

/**
 * Builds the seed image at `path` (replacing it atomically): a FAT image labelled CIDATA with one
 * file per entry of `files` (names from a-z and '-', e.g. "meta-data"). The image is assembled in a
 * temporary directory beside `path` and renamed into place; nothing is left behind on failure.
 * Tool failures reject with the ProcessError from run().
 */
export async function buildSeedImage(
  path: string,
  files: Record<string, string>,
  opts: { mkfsBinary?: string; mcopyBinary?: string; signal?: AbortSignal } = {},
): Promise<void> {
  const names = Object.keys(files);
  if (names.length === 0) throw invalid("a seed image needs at least one file", "pass meta-data, user-data and network-config");
  for (const name of names) {
    if (!FILE_NAME_RE.test(name)) throw invalid(`seed file name ${shown(name)} is not allowed`, "use names made of a-z and '-', such as meta-data, user-data, network-config");
  }
  const mkfs = opts.mkfsBinary ?? defaultMkfs();
  const mcopy = opts.mcopyBinary ?? "mcopy";
  const work = await mkdtemp(join(dirname(path), `.${basename(path)}.tmp-`));
  try {
    const image = join(work, "seed.img");
    await run([mkfs, "-n", "CIDATA", "-C", image, String(imageKib(files))], { signal: opts.signal });
    // mtools refuses images whose geometry it finds odd unless told not to check.
    const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
    for (const name of names) {
      const local = join(work, `file-${name}`);
      await writeFile(local, files[name] ?? "", "utf8");
      await run([mcopy, "-i", image, local, `::${name}`], { env, signal: opts.signal });
    }
    await rename(image, path);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
