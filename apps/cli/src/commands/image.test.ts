import { afterEach, describe, expect, it } from "vitest";
import { IMAGE_ID, makeImage } from "../testing/fixtures.js";
import { bodyOf, json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

const TOKEN = `iaas_0a0b0c0d_${"Z".repeat(43)}`;

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table));
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
