import { Queue } from "bullmq";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hostQueueName, imageFileHint } from "@iaas/contracts";
import { startTestApi, type TestApi } from "./testing/testApi.js";

const MISSING = "the stored file of image 'deb' is missing: /srv/store/images/x.qcow2 (expected 1000 B (1000 bytes))";

interface ProblemBody {
  code: string;
  detail: string;
  hint: string | null;
  jobId?: string;
}

// Images whose stored file is missing or changed (state `error`): refused up front by everything
// that builds a disk on them, verifiable and deletable. The API in-process, no worker.
describe("images in error", () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi();
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  beforeEach(async () => {
    await api.reset();
  });

  /** What a worker's store check leaves on an image whose file is gone. */
  async function markMissing(name = "deb") {
    await api.db.image.updateMany({
      where: { name },
      data: { state: "error", errorCode: "IMAGE_FILE_MISSING", errorMessage: MISSING, errorHint: imageFileHint(name), checkedAt: new Date() },
    });
  }

  async function queued(jobId: string) {
    return new Queue(hostQueueName("h1"), { connection: api.redis, prefix: api.prefix }).getJob(jobId);
  }

  it("refuses a VM create from an image in error at submit, with the image's message and hint, leaving no VM and no job", async () => {
    await markMissing();
    const res = await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M" });
    expect(res.status).toBe(409);
    const problem = (await res.json()) as ProblemBody;
    expect(problem).toMatchObject({ code: "IMAGE_FILE_MISSING", detail: `cannot create VM 'web': image 'deb' is unusable: ${MISSING}`, hint: imageFileHint("deb") });
    expect(problem.hint).toBe("restore the file and run `iaas image verify deb`, or delete the image and import it again");
    expect(await api.db.vm.count()).toBe(0);
    expect(await api.db.job.count()).toBe(0);
    // The dry run says the same.
    const dry = await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M", dryRun: true });
    expect(dry.status).toBe(409);
    expect(((await dry.json()) as ProblemBody).code).toBe("IMAGE_FILE_MISSING");
  });

  it("refuses a clone and an export of an image in error the same way", async () => {
    const image = await api.db.image.findFirstOrThrow({ where: { name: "deb" } });
    await api.db.vm.create({ data: { name: "src", state: "stopped", hostId: "h1", imageId: image.id, cpus: 1, memoryBytes: 256n * 1024n ** 2n, diskBytes: 1024n ** 3n } });
    await api.db.host.update({ where: { id: "h1" }, data: { lastHeartbeatAt: new Date() } });
    await markMissing();
    const clone = await api.post("/v1/vms/src/clone", { name: "copy" });
    expect(clone.status).toBe(409);
    expect((await clone.json()) as ProblemBody).toMatchObject({ code: "IMAGE_FILE_MISSING", detail: `cannot clone VM 'src': image 'deb' is unusable: ${MISSING}`, hint: imageFileHint("deb") });
    const exported = await api.post("/v1/images/deb/export", { format: "qcow2" });
    expect(exported.status).toBe(409);
    expect(((await exported.json()) as ProblemBody).code).toBe("IMAGE_FILE_MISSING");
    expect((await api.db.vm.findMany()).map((vm) => vm.name)).toEqual(["src"]);
    expect(await api.db.job.count()).toBe(0);
    expect(await api.db.vm.findFirstOrThrow({ where: { name: "src" } })).toMatchObject({ lockJobId: null });
  });

  it("queues a verify that holds the image, refuses a second one while it runs, and refuses an image still importing", async () => {
    await markMissing();
    const res = await api.post("/v1/images/deb/verify");
    expect(res.status).toBe(202);
    const body = (await res.json()) as { job: { id: string; type: string; state: string }; image: { name: string; state: string; lastError: { code: string; hint: string } } };
    expect(res.headers.get("location")).toBe(`/v1/jobs/${body.job.id}`);
    expect(body.job).toMatchObject({ type: "image.verify", state: "queued" });
    expect(body.image).toMatchObject({ name: "deb", state: "error", lastError: { code: "IMAGE_FILE_MISSING", hint: imageFileHint("deb") } });
    expect(await api.db.image.findFirstOrThrow({ where: { name: "deb" } })).toMatchObject({ lockJobId: body.job.id });
    expect((await queued(body.job.id))?.data).toEqual({ jobId: body.job.id });
    const again = await api.post("/v1/images/deb/verify");
    expect(again.status).toBe(409);
    expect(((await again.json()) as ProblemBody).jobId).toBe(body.job.id);
    // A VM create meanwhile is still refused for the image's error.
    expect(((await (await api.post("/v1/vms", { name: "web", image: "deb", memory: "256M" })).json()) as ProblemBody).code).toBe("IMAGE_FILE_MISSING");

    await api.db.image.create({ data: { name: "incoming", state: "importing", originType: "upload" } });
    const importing = await api.post("/v1/images/incoming/verify");
    expect(importing.status).toBe(409);
    expect((await importing.json()) as ProblemBody).toMatchObject({ code: "INVALID_STATE", detail: "image 'incoming' is importing: only a ready image, or one in error, can be verified" });
  });

  it("deletes an image in error", async () => {
    await markMissing();
    const res = await fetch(`${api.base}/v1/images/deb`, { method: "DELETE" });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { job: { type: string } };
    expect(body.job.type).toBe("image.delete");
  });
});
