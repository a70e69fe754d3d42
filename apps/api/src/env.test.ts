import { describe, expect, it } from "vitest";
import { parseApiEnv } from "./env.js";

describe("parseApiEnv", () => {
  it("fills defaults and resolves the image store to an absolute path", () => {
    const env = parseApiEnv({ DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "rel/store" });
    expect(env.IAAS_API_PORT).toBe(8080);
    expect(env.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(env.IAAS_IMAGE_STORE.startsWith("/")).toBe(true);
  });

  it("names every bad variable in one error", () => {
    expect(() => parseApiEnv({ DATABASE_URL: "nope", IAAS_API_PORT: "99999" })).toThrow(
      /DATABASE_URL[\s\S]*IAAS_API_PORT|IAAS_API_PORT[\s\S]*DATABASE_URL/,
    );
    expect(() => parseApiEnv({ DATABASE_URL: "nope" })).toThrow(/IAAS_IMAGE_STORE/);
  });
});
