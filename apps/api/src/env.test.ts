import { describe, expect, it } from "vitest";
import { parseApiEnv } from "./env.js";

describe("parseApiEnv", () => {
  it("fills defaults and resolves the image store to an absolute path", () => {
    const env = parseApiEnv({ DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "rel/store" });
    expect(env.IAAS_API_PORT).toBe(8080);
    expect(env.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(env.IAAS_IMAGE_STORE.startsWith("/")).toBe(true);
  });

  it("bounds streams, job retention and idle uploads by default, and names a bad value", () => {
    const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/s" };
    expect(parseApiEnv(base)).toMatchObject({ IAAS_MAX_STREAMS: 1000, IAAS_JOB_RETENTION_DAYS: 30, IAAS_UPLOAD_TTL_HOURS: 24 });
    expect(parseApiEnv({ ...base, IAAS_MAX_STREAMS: "0", IAAS_JOB_RETENTION_DAYS: "7", IAAS_UPLOAD_TTL_HOURS: "0.5" })).toMatchObject({
      IAAS_MAX_STREAMS: 0,
      IAAS_JOB_RETENTION_DAYS: 7,
      IAAS_UPLOAD_TTL_HOURS: 0.5,
    });
    expect(() => parseApiEnv({ ...base, IAAS_JOB_RETENTION_DAYS: "0" })).toThrow(/IAAS_JOB_RETENTION_DAYS/);
    expect(() => parseApiEnv({ ...base, IAAS_UPLOAD_TTL_HOURS: "soon" })).toThrow(/IAAS_UPLOAD_TTL_HOURS/);
  });

  it("leaves /metrics open unless IAAS_METRICS_TOKEN is set, and refuses a token under 16 characters", () => {
    const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/srv/store" };
    expect(parseApiEnv(base).IAAS_METRICS_TOKEN).toBeUndefined();
    expect(parseApiEnv({ ...base, IAAS_METRICS_TOKEN: "0123456789abcdef" }).IAAS_METRICS_TOKEN).toBe("0123456789abcdef");
    expect(() => parseApiEnv({ ...base, IAAS_METRICS_TOKEN: "short" })).toThrow(/IAAS_METRICS_TOKEN.*16 characters/);
  });

  it("checks pushed job events against a lost notification every 5 s by default, and refuses an interval under 100 ms", () => {
    const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/s" };
    expect(parseApiEnv(base).IAAS_EVENT_SAFETY_POLL_MS).toBe(5000);
    expect(parseApiEnv({ ...base, IAAS_EVENT_SAFETY_POLL_MS: "60000" }).IAAS_EVENT_SAFETY_POLL_MS).toBe(60_000);
    expect(() => parseApiEnv({ ...base, IAAS_EVENT_SAFETY_POLL_MS: "10" })).toThrow(/IAAS_EVENT_SAFETY_POLL_MS/);
  });

  it("names every bad variable in one error", () => {
    expect(() => parseApiEnv({ DATABASE_URL: "nope", IAAS_API_PORT: "99999" })).toThrow(
      /DATABASE_URL[\s\S]*IAAS_API_PORT|IAAS_API_PORT[\s\S]*DATABASE_URL/,
    );
    expect(() => parseApiEnv({ DATABASE_URL: "nope" })).toThrow(/IAAS_IMAGE_STORE/);
  });

  it("authenticates by default, and allows IAAS_AUTH=none only on loopback", () => {
    const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/s" };
    expect(parseApiEnv(base).IAAS_AUTH).toBe("token");
    expect(parseApiEnv({ ...base, IAAS_AUTH: "none" }).IAAS_AUTH).toBe("none");
    expect(parseApiEnv({ ...base, IAAS_AUTH: "none", IAAS_API_HOST: "::1" }).IAAS_AUTH).toBe("none");
    for (const host of ["0.0.0.0", "10.0.0.5", "::", "api.example.org"]) {
      expect(() => parseApiEnv({ ...base, IAAS_AUTH: "none", IAAS_API_HOST: host })).toThrow(/only allowed with IAAS_API_HOST on loopback/);
    }
    expect(() => parseApiEnv({ ...base, IAAS_API_TOKEN: "s3cret" })).toThrow(/IAAS_API_TOKEN is gone/);
  });
});
