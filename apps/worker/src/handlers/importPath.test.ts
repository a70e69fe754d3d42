import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveImportPath } from "./importPath.js";

describe("resolveImportPath", () => {
  let dir: string;
  let importDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "iaas-import-"));
    importDir = path.join(dir, "import");
    await mkdir(path.join(importDir, "sub"), { recursive: true });
    await writeFile(path.join(importDir, "sub", "disk.qcow2"), "x");
    await writeFile(path.join(dir, "secret"), "y");
    await symlink(path.join(dir, "secret"), path.join(importDir, "escape.img"));
    await symlink(path.join(importDir, "sub", "disk.qcow2"), path.join(importDir, "inside.img"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("accepts a file inside the import directory, and a link that stays inside", async () => {
    expect(await resolveImportPath(path.join(importDir, "sub", "disk.qcow2"), importDir)).toBe(path.join(importDir, "sub", "disk.qcow2"));
    expect(await resolveImportPath(path.join(importDir, "inside.img"), importDir)).toBe(path.join(importDir, "sub", "disk.qcow2"));
  });

  it("refuses '..' and symlinks that leave the import directory", async () => {
    await expect(resolveImportPath(path.join(importDir, "..", "secret"), importDir)).rejects.toMatchObject({ code: "SOURCE_PATH_NOT_ALLOWED" });
    await expect(resolveImportPath(path.join(importDir, "escape.img"), importDir)).rejects.toThrow(/outside the import directory/);
  });

  it("refuses relative paths, directories, missing files, and everything when no import directory is set", async () => {
    await expect(resolveImportPath("sub/disk.qcow2", importDir)).rejects.toThrow(/not an absolute path/);
    await expect(resolveImportPath(path.join(importDir, "sub"), importDir)).rejects.toThrow(/not a regular file/);
    await expect(resolveImportPath(path.join(importDir, "nope"), importDir)).rejects.toThrow(/does not exist/);
    await expect(resolveImportPath(path.join(importDir, "sub", "disk.qcow2"), undefined)).rejects.toThrow(/disabled/);
  });
});
