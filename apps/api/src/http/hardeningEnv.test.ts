import { describe, expect, it } from "vitest";
import { parseApiEnv } from "../env.js";
import { hardeningFromEnv, hostAllowed } from "./hardening.js";

const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/tmp/store" };

describe("hardening configuration", () => {
  it("has safe defaults", () => {
    const env = parseApiEnv(base);
    expect(hardeningFromEnv(env)).toEqual({
      allowedOrigins: [],
      allowedHosts: [],
      trustProxy: false,
      tls: false,
      rateLimit: { perToken: 600, perAddress: 1200, exempt: ["127.0.0.0/8", "::1"] },
      maxStreamsPerToken: 32,
      maxStreams: 1000,
    });
    expect(env).toMatchObject({ IAAS_MAX_HEADER_BYTES: 16384, IAAS_HEADERS_TIMEOUT_SECONDS: 30, IAAS_REQUEST_TIMEOUT_SECONDS: 0, IAAS_BODY_IDLE_TIMEOUT_SECONDS: 120 });
  });

  it("reads lists, normalizing origins and host names", () => {
    const env = parseApiEnv({
      ...base,
      IAAS_ALLOWED_ORIGINS: "https://Console.Example.com/, http://localhost:3000",
      IAAS_ALLOWED_HOSTS: "API.example.com., *.iaas.example.net",
      IAAS_RATE_LIMIT_EXEMPT: "",
      IAAS_TRUST_PROXY: "loopback, 10.0.0.0/8",
      IAAS_TLS_CERT: "/etc/iaas/cert.pem",
      IAAS_TLS_KEY: "/etc/iaas/key.pem",
      IAAS_RATE_LIMIT_PER_MINUTE: "0",
    });
    expect(hardeningFromEnv(env)).toMatchObject({
      allowedOrigins: ["https://console.example.com", "http://localhost:3000"],
      allowedHosts: ["api.example.com", "*.iaas.example.net"],
      trustProxy: "loopback,10.0.0.0/8",
      tls: true,
      rateLimit: { perToken: 0, perAddress: 1200, exempt: [] },
    });
    expect(parseApiEnv({ ...base, IAAS_TRUST_PROXY: "2" }).IAAS_TRUST_PROXY).toBe(2);
  });

  it("refuses half a TLS setup, bad lists and a trust-everyone proxy setting", () => {
    expect(() => parseApiEnv({ ...base, IAAS_TLS_CERT: "/etc/iaas/cert.pem" })).toThrow(/IAAS_TLS_KEY: set both IAAS_TLS_CERT and IAAS_TLS_KEY/);
    expect(() => parseApiEnv({ ...base, IAAS_TLS_KEY: "/etc/iaas/key.pem" })).toThrow(/IAAS_TLS_CERT: set both/);
    expect(() => parseApiEnv({ ...base, IAAS_ALLOWED_ORIGINS: "https://ok.example, https://x.example/path" })).toThrow(/IAAS_ALLOWED_ORIGINS: 'https:\/\/x\.example\/path' is not an origin/);
    expect(() => parseApiEnv({ ...base, IAAS_ALLOWED_HOSTS: "exa mple.com" })).toThrow(/IAAS_ALLOWED_HOSTS/);
    expect(() => parseApiEnv({ ...base, IAAS_RATE_LIMIT_EXEMPT: "10.0.0.0/33" })).toThrow(/IAAS_RATE_LIMIT_EXEMPT/);
    expect(() => parseApiEnv({ ...base, IAAS_TRUST_PROXY: "true" })).toThrow(/IAAS_TRUST_PROXY: .*true is refused/);
    expect(() => parseApiEnv({ ...base, IAAS_RATE_LIMIT_PER_MINUTE: "-1" })).toThrow(/IAAS_RATE_LIMIT_PER_MINUTE/);
    expect(() => parseApiEnv({ ...base, IAAS_HEADERS_TIMEOUT_SECONDS: "60", IAAS_REQUEST_TIMEOUT_SECONDS: "30" })).toThrow(/IAAS_HEADERS_TIMEOUT_SECONDS/);
  });
});

describe("hostAllowed", () => {
  it("takes IP literals, localhost and listed names; nothing else", () => {
    for (const h of ["127.0.0.1", "10.0.0.5", "[::1]", "[fe80::1]", "localhost", "LOCALHOST."]) expect(hostAllowed(h, []), h).toBe(true);
    for (const h of ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "0x7f000001"]) expect(hostAllowed(h, []), h).toBe(false);
    expect(hostAllowed("api.example.com", ["api.example.com"])).toBe(true);
    expect(hostAllowed("x.iaas.example.net", ["*.iaas.example.net"])).toBe(true);
    expect(hostAllowed("iaas.example.net", ["*.iaas.example.net"])).toBe(false);
    expect(hostAllowed("eviliaas.example.net", ["*.iaas.example.net"])).toBe(false);
    expect(hostAllowed("anything.example", ["*"])).toBe(true);
  });
});
