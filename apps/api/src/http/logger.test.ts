import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

function captured() {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) } };
}

describe("the API's logger", () => {
  it("prints Authorization headers, tokens and secrets as [Redacted]", () => {
    const { lines, stream } = captured();
    const log = createLogger("info", stream);
    log.info({ req: { method: "GET", headers: { authorization: "Bearer iaas_0badc0de_s3cretS3cret", "idempotency-key": "k-1" } } }, "request");
    log.info({ headers: { authorization: "Bearer other-secret" }, authorization: "Basic aGVsbG8=" }, "outgoing");
    log.info({ body: { name: "ci", token: "iaas_0badc0de_minted" }, webhook: { secret: "hush" }, config: { apiToken: "legacy" } }, "created");
    const out = lines.join("");
    for (const secret of ["s3cretS3cret", "other-secret", "aGVsbG8=", "minted", "hush", "legacy"]) expect(out).not.toContain(secret);
    const [first, second, third] = lines.map((l) => JSON.parse(l) as Record<string, never>);
    expect(first).toMatchObject({ service: "api", req: { method: "GET", headers: { authorization: "[Redacted]", "idempotency-key": "k-1" } } });
    expect(second).toMatchObject({ headers: { authorization: "[Redacted]" }, authorization: "[Redacted]" });
    expect(third).toMatchObject({ body: { name: "ci", token: "[Redacted]" }, webhook: { secret: "[Redacted]" }, config: { apiToken: "[Redacted]" } });
  });
});
