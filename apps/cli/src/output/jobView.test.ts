import { describe, expect, it } from "vitest";
import { makeJob } from "../testing/fixtures.js";
import { jobDetails } from "./jobView.js";

describe("iaas job show", () => {
  it("prints the id of the request that made the job, and who asked", () => {
    const out = jobDetails(makeJob({ requestId: "trace-4711", actor: { name: "ci", tokenId: null, requestId: "trace-4711" } }));
    expect(out).toMatch(/^requested by:\s+ci$/m);
    expect(out).toMatch(/^request id:\s+trace-4711$/m);
  });

  it("takes the request id from the actor when an older API sends it only there, and prints none for a background job", () => {
    expect(jobDetails(makeJob({ actor: { name: "ci", tokenId: null, requestId: "from-actor" } }))).toMatch(/^request id:\s+from-actor$/m);
    expect(jobDetails(makeJob({ requestId: null, actor: null }))).not.toContain("request id");
  });
});
