import { readFile } from "node:fs/promises";
import { formatSize } from "@iaas/contracts";
import { usageError } from "../CliError.js";

/** The API's bound on cloud-init user-data. */
export const USER_DATA_MAX_BYTES = 64 * 1024;
/** The API's bound on SSH keys per VM. */
export const SSH_KEYS_MAX = 32;

/**
 * Reads `--ssh-key` files (authorized_keys format): every line that is neither empty nor a
 * `#` comment is one key. A missing or unreadable file, a private key, or a file with no key at
 * all is a usage error naming the file.
 */
export async function readSshKeys(files: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const file of files) {
    const text = await readText(file, "SSH key file");
    const lines = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    if (lines.some((line) => line.includes("PRIVATE KEY"))) {
      throw usageError(`SSH key file ${file} holds a private key`, `give the public key instead, e.g. --ssh-key ${file}.pub`);
    }
    if (lines.length === 0) throw usageError(`SSH key file ${file} holds no key (only blank or # lines)`);
    keys.push(...lines);
  }
  if (keys.length > SSH_KEYS_MAX) throw usageError(`${keys.length} SSH keys given; a VM takes at most ${SSH_KEYS_MAX}`);
  return keys;
}

/** Reads `--user-data FILE` as text; a file over 64 KiB is refused before anything is sent. */
export async function readUserData(file: string): Promise<string> {
  const bytes = await readBytes(file, "user-data file");
  if (bytes.length > USER_DATA_MAX_BYTES) {
    throw usageError(
      `user-data file ${file} is ${formatSize(bytes.length)} (${bytes.length} bytes); cloud-init user-data may be at most ${formatSize(USER_DATA_MAX_BYTES)}`,
      "shrink it, e.g. fetch large files from the guest instead of embedding them",
    );
  }
  return bytes.toString("utf8");
}

async function readText(file: string, what: string): Promise<string> {
  return (await readBytes(file, what)).toString("utf8");
}

async function readBytes(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw usageError(`cannot read ${what} ${file}: ${describeFsError(err)}`);
  }
}

function describeFsError(err: unknown): string {
  const code = err instanceof Error && "code" in err ? err.code : undefined;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a directory";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
