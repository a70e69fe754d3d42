import { describe, expect, it } from "vitest";
import { parseWorkerEnv } from "./env.js";

const base = { DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/iaas", IAAS_IMAGE_STORE: "/srv/iaas/images" };

describe("parseWorkerEnv", () => {
  it("defaults the accelerator to auto and the host id to a hostname-safe string", () => {
    const env = parseWorkerEnv(base);
    expect(env.IAAS_ACCEL).toBe("auto");
    expect(env.IAAS_HOST_ID).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  });

  it("rejects an accelerator it does not know, naming the variable", () => {
    expect(() => parseWorkerEnv({ ...base, IAAS_ACCEL: "hvf" })).toThrow(/IAAS_ACCEL/);
  });

  it("rotates console logs at 1 MiB by default, takes sizes, and refuses a size too small to rotate", () => {
    expect(parseWorkerEnv(base).IAAS_CONSOLE_LOG_MAX_BYTES).toBe(1024 * 1024);
    expect(parseWorkerEnv({ ...base, IAAS_CONSOLE_LOG_MAX_BYTES: "4M" }).IAAS_CONSOLE_LOG_MAX_BYTES).toBe(4 * 1024 * 1024);
    expect(parseWorkerEnv({ ...base, IAAS_CONSOLE_LOG_MAX_BYTES: "0" }).IAAS_CONSOLE_LOG_MAX_BYTES).toBe(0);
    expect(() => parseWorkerEnv({ ...base, IAAS_CONSOLE_LOG_MAX_BYTES: "4k" })).toThrow(/IAAS_CONSOLE_LOG_MAX_BYTES.*at least 64K/);
    expect(() => parseWorkerEnv({ ...base, IAAS_CONSOLE_LOG_MAX_BYTES: "lots" })).toThrow(/IAAS_CONSOLE_LOG_MAX_BYTES.*invalid size/);
  });

  it("refuses a data directory too long for QMP socket paths", () => {
    expect(() => parseWorkerEnv({ ...base, IAAS_DATA_DIR: `/tmp/${"x".repeat(80)}` })).toThrow(/IAAS_DATA_DIR.*107-byte/);
  });

  it("takes IAAS_QEMU_USER as a user name or '' (QEMU stays root), refusing anything else", () => {
    expect(parseWorkerEnv(base).IAAS_QEMU_USER).toBeUndefined();
    expect(parseWorkerEnv({ ...base, IAAS_QEMU_USER: "" }).IAAS_QEMU_USER).toBe("");
    expect(parseWorkerEnv({ ...base, IAAS_QEMU_USER: "iaas-qemu" }).IAAS_QEMU_USER).toBe("iaas-qemu");
    expect(() => parseWorkerEnv({ ...base, IAAS_QEMU_USER: "a b" })).toThrow(/IAAS_QEMU_USER/);
    expect(() => parseWorkerEnv({ ...base, IAAS_QEMU_USER: "--reuid=0" })).toThrow(/IAAS_QEMU_USER/);
  });

  it("serves metrics on 127.0.0.1:9464 by default, none with port 0, and refuses a bad port or a short token", () => {
    expect(parseWorkerEnv(base)).toMatchObject({ IAAS_METRICS_PORT: 9464, IAAS_METRICS_HOST: "127.0.0.1" });
    expect(parseWorkerEnv(base).IAAS_METRICS_TOKEN).toBeUndefined();
    expect(parseWorkerEnv({ ...base, IAAS_METRICS_PORT: "0" }).IAAS_METRICS_PORT).toBe(0);
    expect(parseWorkerEnv({ ...base, IAAS_METRICS_PORT: "9470", IAAS_METRICS_HOST: "0.0.0.0" })).toMatchObject({ IAAS_METRICS_PORT: 9470, IAAS_METRICS_HOST: "0.0.0.0" });
    expect(() => parseWorkerEnv({ ...base, IAAS_METRICS_PORT: "70000" })).toThrow(/IAAS_METRICS_PORT/);
    expect(() => parseWorkerEnv({ ...base, IAAS_METRICS_TOKEN: "short" })).toThrow(/IAAS_METRICS_TOKEN.*16 characters/);
  });

  it("refuses a host id with characters unsafe in queue names", () => {
    expect(() => parseWorkerEnv({ ...base, IAAS_HOST_ID: "host:1" })).toThrow(/IAAS_HOST_ID/);
  });
});
