import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { findExecutable, ProcessError, run } from "../run.js";
import { renderMetaData, renderNetworkConfig, renderUserData } from "./cloudInit.js";
import { buildSeedImage } from "./seedImage.js";

// Real mkfs.vfat and mtools, no root needed.

const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`;
const mkfs = findExecutable("mkfs.vfat", SBIN_PATH);
const haveTools = mkfs !== null && findExecutable("mcopy") !== null && findExecutable("mdir") !== null && findExecutable("mtype") !== null;
const mtoolsEnv = { ...process.env, MTOOLS_SKIP_CHECK: "1" };

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "seed-"));
});
afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!haveTools)("buildSeedImage with mkfs.vfat and mtools", () => {
  const files = {
    "meta-data": renderMetaData({ instanceId: "vm-1", hostname: "web-1", sshKeys: [] }),
    "user-data": renderUserData({ hostname: "web-1", sshKeys: [], userData: "#cloud-config\nruncmd:\n  - [sh, -c, 'echo é > /tmp/x']\n" }),
    "network-config": renderNetworkConfig([{ mac: "52:54:00:12:34:56", name: "eth0" }]),
  };

  it("builds a FAT image labelled CIDATA holding the files byte for byte", async () => {
    const path = join(dir, "seed.img");
    await buildSeedImage(path, files, { mkfsBinary: mkfs ?? undefined });
    expect((await stat(path)).size).toBe(1024 * 1024);
    const listing = (await run(["mdir", "-i", path, "::"], { env: mtoolsEnv })).stdout;
    expect(listing).toMatch(/Volume in drive : is CIDATA/);
    for (const [name, content] of Object.entries(files)) {
      expect((await run(["mtype", "-i", path, `::${name}`], { env: mtoolsEnv })).stdout).toBe(content);
    }
    // Long names are kept (mdir prints them after the 8.3 alias).
    expect(listing).toContain("network-config");
    // Nothing but the image is left beside it.
    expect(await readdir(dir)).toEqual(["seed.img"]);
  });

  it("replaces an existing image", async () => {
    const path = join(dir, "replace.img");
    await writeFile(path, "old");
    await buildSeedImage(path, { "meta-data": "instance-id: x\n" }, { mkfsBinary: mkfs ?? undefined });
    expect((await run(["mtype", "-i", path, "::meta-data"], { env: mtoolsEnv })).stdout).toBe("instance-id: x\n");
    await rm(path);
  });

  it("grows the image for content larger than 1 MiB", async () => {
    const path = join(dir, "big.img");
    const big = "x".repeat(1536 * 1024);
    await buildSeedImage(path, { "user-data": big }, { mkfsBinary: mkfs ?? undefined });
    expect((await stat(path)).size).toBeGreaterThan(2 * 1024 * 1024);
    expect((await run(["mtype", "-i", path, "::user-data"], { env: mtoolsEnv })).stdout).toBe(big);
    await rm(path);
  });

  it("refuses file names outside [a-z-] before running anything", async () => {
    for (const name of ["../x", "Meta-Data", "a b", "user_data", "", "-x"]) {
      const err = await buildSeedImage(join(dir, "bad.img"), { [name]: "x" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IaasError);
      expect((err as IaasError).code).toBe("VALIDATION_FAILED");
    }
    await expect(buildSeedImage(join(dir, "bad.img"), {})).rejects.toThrow("at least one file");
    expect(await readdir(dir)).toEqual(["seed.img"]);
  });

  it("leaves nothing behind when a tool fails", async () => {
    const err = await buildSeedImage(join(dir, "fail.img"), files, { mcopyBinary: "/nonexistent/mcopy" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect(await readdir(dir)).toEqual(["seed.img"]);
  });

  it("stops when aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await buildSeedImage(join(dir, "aborted.img"), files, { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect((err as ProcessError).reason).toBe("aborted");
    expect(await readdir(dir)).toEqual(["seed.img"]);
  });
});
