import { afterEach, describe, expect, it } from "vitest";
import { IMAGE_ID, JOB_ID, makeImage, makeJob, stateEvent } from "../testing/fixtures.js";
import { bodyOf, json, problem, routeTable, type Route } from "../testing/routes.js";
import type { JobScript } from "../testing/jobApi.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const TOKEN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>, job?: JobScript): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table, job));
  return server;
}

describe("image set-public and set-private", () => {
  it("PATCHes {public: true} and says every project may use the image", async () => {
    const s = await serve({ "PATCH /v1/images/deb12": json(makeImage()) });
    const run = await runIaas(["image", "set-public", "deb12"], s.url, { env: { IAAS_TOKEN: TOKEN, IAAS_PROJECT: "ops" } });
    expect(run).toEqual({ code: 0, stdout: "image deb12 is public: every project may use it\n", stderr: "" });
    const req = s.requests[0];
    expect(req?.method).toBe("PATCH");
    expect(bodyOf(req)).toEqual({ public: true });
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req?.headers["x-iaas-project"]).toBe("ops");
    expect(req?.headers["content-type"]).toBe("application/json");
  });

  it("PATCHes {public: false} and prints the image as JSON with -o json", async () => {
    const s = await serve({ [`PATCH /v1/images/${IMAGE_ID}`]: json(makeImage()) });
    expect((await runIaas(["image", "set-private", IMAGE_ID], s.url)).stdout).toBe("image deb12 is private: only its own project sees it\n");
    expect(bodyOf(s.requests[0])).toEqual({ public: false });
    const asJson = await runIaas(["image", "set-private", IMAGE_ID, "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ id: IMAGE_ID, name: "deb12", public: false });
  });

  it("exits 3 for an unknown image, 5 for a role that may not (403), 2 without a name", async () => {
    const s = await serve({
      "PATCH /v1/images/nope": problem(404, "NOT_FOUND", "image 'nope' not found", "list images with `iaas image list`"),
      "PATCH /v1/images/deb12": problem(403, "FORBIDDEN", "role operator may not make images public", "ask an admin"),
    });
    expect(await runIaas(["image", "set-public", "nope"], s.url)).toEqual({ code: 3, stdout: "", stderr: "error: image 'nope' not found\nhint: list images with `iaas image list`\n" });
    const forbidden = await runIaas(["image", "set-public", "deb12"], s.url);
    expect(forbidden.code).toBe(5);
    expect(forbidden.stderr).toContain("(403): role operator may not make images public\nhint: ask an admin\n");
    expect((await runIaas(["image", "set-public"], s.url)).code).toBe(2);
  });
});

describe("image verify", () => {
  const HINT = "restore the file and run `iaas image verify deb12`, or delete the image and import it again";
  const job = makeJob({ type: "image.verify", state: "running", vmId: null, imageId: IMAGE_ID, targetName: "deb12", payload: { imageId: IMAGE_ID }, startedAt: "2025-01-01T00:00:01.000Z" });
  const accepted = { job: { ...job, state: "queued" as const, startedAt: null }, image: makeImage({ state: "error" }) };

  it("POSTs /verify and says how to follow the job", async () => {
    const s = await serve({ "POST /v1/images/deb12/verify": json(accepted, 202) });
    const run = await runIaas(["image", "verify", "deb12"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`job ${JOB_ID} queued: verify image (image deb12)\nfollow it with: iaas job wait ${JOB_ID}\n`);
    expect(s.requests[0]).toMatchObject({ method: "POST", path: "/v1/images/deb12/verify" });
  });

  it("with --wait prints the outcome and the image, ready again", async () => {
    const sha = "ab".repeat(32);
    const final = { ...job, state: "succeeded" as const, result: { imageId: IMAGE_ID, state: "ready", sizeBytes: 1024, sha256: sha, firstChecksum: false }, finishedAt: "2025-01-01T00:00:02.000Z" };
    const s = await serve(
      { "POST /v1/images/deb12/verify": json(accepted, 202), [`GET /v1/images/${IMAGE_ID}`]: json(makeImage({ storedSha256: sha })) },
      { running: job, events: [stateEvent(1, "running"), stateEvent(2, "succeeded")], final },
    );
    const run = await runIaas(["image", "verify", "deb12", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`image deb12: stored file whole (sha256 ${sha}); the image is ready\n`);
    expect(run.stdout).toContain(`stored sha256:    ${sha}\n`);
    expect(run.stdout).toContain("state:            ready\n");
  });

  it("with --wait exits 1 with the reason and the hint when the file is missing or changed", async () => {
    const error = { code: "IMAGE_FILE_MISMATCH" as const, message: "the stored file of image 'deb12' has changed: the sha256 of /srv/x.qcow2 is 11…, 22… was recorded when it was stored", hint: HINT };
    const final = { ...job, state: "failed" as const, error, finishedAt: "2025-01-01T00:00:02.000Z" };
    const s = await serve({ "POST /v1/images/deb12/verify": json(accepted, 202) }, { running: job, events: [stateEvent(1, "running"), stateEvent(2, "failed")], final });
    const run = await runIaas(["image", "verify", "deb12", "--wait"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`error: ${error.message}\nhint: ${HINT}\n`);
  });

  it("exits 3 when the image is busy or in a state that cannot be verified", async () => {
    const s = await serve({ "POST /v1/images/deb12/verify": problem(409, "INVALID_STATE", "image 'deb12' is importing: only a ready image, or one in error, can be verified", "look at it with `iaas image show deb12`") });
    const run = await runIaas(["image", "verify", "deb12"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: image 'deb12' is importing: only a ready image, or one in error, can be verified\nhint: look at it with `iaas image show deb12`\n" });
  });
});
