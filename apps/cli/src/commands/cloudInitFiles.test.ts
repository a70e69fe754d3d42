import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CliError } from "../CliError.js";
import { readSshKeys, readUserData, USER_DATA_MAX_BYTES } from "./cloudInitFiles.js";

let dir = "";
const file = (name: string): string => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "iaas-keys-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The CliError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<CliError> {
  const err: unknown = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof CliError)) throw new Error(`expected a CliError, got ${String(err)}`);
  return err;
}

describe("--ssh-key files", () => {
  it("sends every line that is not blank or a # comment as one key, file after file", async () => {
    await writeFile(file("a.pub"), "# laptop\nssh-ed25519 AAAAC3Nza alice@laptop\n\n  ssh-rsa AAAAB3Nza bob@desk  \r\n");
    await writeFile(file("b.pub"), "ecdsa-sha2-nistp256 AAAAE2V carol\n");
    expect(await readSshKeys([file("a.pub"), file("b.pub")])).toEqual(["ssh-ed25519 AAAAC3Nza alice@laptop", "ssh-rsa AAAAB3Nza bob@desk", "ecdsa-sha2-nistp256 AAAAE2V carol"]);
  });

  it("refuses a missing file with exit 2, naming it", async () => {
    const err = await failure(readSshKeys([file("missing.pub")]));
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(`cannot read SSH key file ${file("missing.pub")}: no such file`);
  });

  it("refuses a directory and an unreadable file", async () => {
    expect((await failure(readSshKeys([dir]))).message).toBe(`cannot read SSH key file ${dir}: it is a directory`);
    if (process.getuid?.() === 0) return; // root reads anything
    await writeFile(file("secret.pub"), "ssh-ed25519 AAAA x\n");
    await chmod(file("secret.pub"), 0o000);
    expect((await failure(readSshKeys([file("secret.pub")]))).message).toBe(`cannot read SSH key file ${file("secret.pub")}: permission denied`);
  });

  it("refuses a private key, and a file without any key", async () => {
    await writeFile(file("id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n");
    const priv = await failure(readSshKeys([file("id_ed25519")]));
    expect(priv.exitCode).toBe(2);
    expect(priv.message).toBe(`SSH key file ${file("id_ed25519")} holds a private key`);
    expect(priv.hint).toBe(`give the public key instead, e.g. --ssh-key ${file("id_ed25519")}.pub`);
    await writeFile(file("empty.pub"), "# nothing\n\n");
    expect((await failure(readSshKeys([file("empty.pub")]))).message).toMatch(/holds no key/);
  });

  it("refuses more than 32 keys", async () => {
    await writeFile(file("many.pub"), Array.from({ length: 33 }, (_, i) => `ssh-ed25519 AAAA${i}`).join("\n"));
    expect((await failure(readSshKeys([file("many.pub")]))).message).toBe("33 SSH keys given; a VM takes at most 32");
  });
});

describe("--user-data file", () => {
  it("reads the file as text, up to 64 KiB", async () => {
    await writeFile(file("init.yaml"), "#cloud-config\npackages: [nginx]\n");
    expect(await readUserData(file("init.yaml"))).toBe("#cloud-config\npackages: [nginx]\n");
    await writeFile(file("max.yaml"), "x".repeat(USER_DATA_MAX_BYTES));
    expect((await readUserData(file("max.yaml"))).length).toBe(USER_DATA_MAX_BYTES);
  });

  it("refuses a file over 64 KiB (counted in bytes) and a missing one, with exit 2", async () => {
    await writeFile(file("big.yaml"), "é".repeat(USER_DATA_MAX_BYTES / 2 + 1));
    const big = await failure(readUserData(file("big.yaml")));
    expect(big.exitCode).toBe(2);
    expect(big.message).toBe(`user-data file ${file("big.yaml")} is 64.0 KiB (65538 bytes); cloud-init user-data may be at most 64 KiB`);
    expect((await failure(readUserData(file("nope.yaml")))).message).toBe(`cannot read user-data file ${file("nope.yaml")}: no such file`);
  });
});
