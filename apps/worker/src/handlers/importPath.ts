import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import { IaasError } from "@iaas/contracts";

function refused(message: string, hint: string): IaasError {
  return new IaasError("SOURCE_PATH_NOT_ALLOWED", message, { hint });
}

/**
 * Resolves a `--source-path` on this host and returns its real path, only if it is a regular
 * file inside the operator's import directory: `..` and symlinks that leave the directory are
 * refused, since the real path is what counts.
 */
export async function resolveImportPath(requested: string, importDir: string | undefined): Promise<string> {
  if (!importDir) {
    throw refused("imports from a host path are disabled on this host", "the operator sets IAAS_IMPORT_DIR on the worker to allow them");
  }
  if (!path.isAbsolute(requested) || requested.includes("\0")) {
    throw refused(`'${requested}' is not an absolute path`, `give a path inside ${importDir}`);
  }
  const root = await realpath(importDir);
  let real: string;
  try {
    real = await realpath(requested);
  } catch {
    throw refused(`'${requested}' does not exist on this host`, `put the file inside ${importDir} on the hypervisor host`);
  }
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw refused(`'${requested}' resolves to '${real}', outside the import directory ${root}`, `copy the file into ${root}; links leaving it are not followed`);
  }
  if (!(await stat(real)).isFile()) throw refused(`'${requested}' is not a regular file`, "give the path of a disk image file");
  return real;
}
