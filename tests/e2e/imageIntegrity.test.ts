import { copyFile, mkdtemp, open, rm, stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, Stack } from "./harness.js";
import { apiGet, jobsOf, MiB, sha256File, showImage, storedImageFile, writePatternRaw } from "./imageFixtures.js";

const HINT = "restore the file and run `iaas image verify img1`, or delete the image and import it again";

// Store integrity through the built CLI, with a worker that checks the store every second: a
// ready image whose file is deleted turns `error`, VM create is refused up front with the hint,
// `image verify` makes it ready once the file is back, and finds one changed byte by its sha256.
describe("store integrity: an image whose stored file goes missing or changes", () => {
  let stack: Stack;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp("/tmp/ie-integrity-");
    await writePatternRaw(path.join(tmp, "disk.raw"), 4 * MiB);
    stack = await Stack.start(["host-a"], { workerEnv: { IAAS_STORE_CHECK_INTERVAL_SECONDS: "1" } });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it("marks the image error, refuses VMs with the hint, and is made ready again only by image verify", async () => {
    const imported = await stack.cli(["image", "import", "img1", "--file", path.join(tmp, "disk.raw"), "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
    const image = await showImage(stack, "img1");
    const file = storedImageFile(stack, image);
    expect(image).toMatchObject({ state: "ready", storedSize: (await stat(file)).size, storedSha256: await sha256File(file) });
    const saved = path.join(tmp, "saved.qcow2");
    await copyFile(file, saved);

    // The file goes; the next store check marks the image and records why.
    await rm(file);
    const broken = await eventually("the store check to mark the image error", async () => {
      const now = await showImage(stack, "img1");
      return now.state === "error" ? now : null;
    }, 30_000);
    expect(broken.lastError).toMatchObject({ code: "IMAGE_FILE_MISSING", hint: HINT });
    expect(broken.lastError?.message).toContain(`the stored file of image 'img1' is missing: ${file}`);
    const reconciled = await jobsOf(stack, "img1", "image.reconcile");
    expect(reconciled).toHaveLength(1);
    expect(reconciled[0]).toMatchObject({ state: "succeeded", hostId: "host-a" });

    // VM create is refused at submit (409, exit 3) with the image's message and hint; nothing is made.
    const create = await stack.cli(["vm", "create", "vm1", "--image", "img1", "--memory", "128M"]);
    expect(create.code).toBe(3);
    expect(create.stderr).toContain(`error: cannot create VM 'vm1': image 'img1' is unusable: the stored file of image 'img1' is missing: ${file}`);
    expect(create.stderr).toContain(`hint: ${HINT}\n`);
    expect((await apiGet<{ items: unknown[] }>(stack, "/v1/vms")).items).toEqual([]);

    // The file is back: the periodic check does not flip the image back on its own…
    await copyFile(saved, file);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await showImage(stack, "img1")).state).toBe("error");
    // …`image verify` does, after checking size, sha256 and qemu-img check.
    const verified = await stack.cli(["image", "verify", "img1", "--wait"]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain("img1: stored file whole");
    expect(await showImage(stack, "img1")).toMatchObject({ state: "ready", lastError: null });

    // One byte changed, same size: the store check cannot see it, verify does.
    const fh = await open(file, "r+");
    const at = (await fh.stat()).size - 100;
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([(byte[0] ?? 0) ^ 0xff]), 0, 1, at);
    await fh.close();
    const changed = await stack.cli(["image", "verify", "img1", "--wait"]);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toContain(`error: the stored file of image 'img1' has changed: the sha256 of ${file} is ${await sha256File(file)}, ${image.storedSha256 ?? ""} was recorded when it was stored`);
    expect(changed.stderr).toContain(`hint: ${HINT}\n`);
    expect((await showImage(stack, "img1")).lastError).toMatchObject({ code: "IMAGE_FILE_MISMATCH" });
    expect((await showImage(stack, "img1")).state).toBe("error");

    // An image in error can be deleted.
    const deleted = await stack.cli(["image", "delete", "img1", "--wait"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await stat(file).then(() => true, () => false)).toBe(false);
  }, 240_000);
});
