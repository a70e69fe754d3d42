import { describe, expect, it } from "vitest";
import { exportOptions, formatImageOptions } from "./qemuImgOptions.js";

describe("exportOptions", () => {
  it("picks portable defaults for each format", () => {
    expect(exportOptions("vmdk")).toEqual({ subformat: "streamOptimized" });
    expect(exportOptions("vpc")).toEqual({ subformat: "dynamic", force_size: "on" });
    expect(exportOptions("vhdx")).toEqual({ subformat: "dynamic" });
    expect(exportOptions("qcow2")).toEqual({ compat: "1.1" });
    expect(exportOptions("raw")).toEqual({});
    expect(exportOptions("vdi")).toEqual({});
  });
});

describe("formatImageOptions", () => {
  it("joins options as k=v with commas, and null for none", () => {
    expect(formatImageOptions({ subformat: "dynamic", force_size: "on" })).toBe("subformat=dynamic,force_size=on");
    expect(formatImageOptions({})).toBeNull();
  });

  it("doubles commas in values so they cannot start another option", () => {
    expect(formatImageOptions({ compat: "1.1,backing_file=/etc/passwd" })).toBe("compat=1.1,,backing_file=/etc/passwd");
  });

  it("refuses options that would make the image reference other files or need secrets", () => {
    for (const key of ["backing_file", "backing_fmt", "data_file", "data_file_raw", "encrypt.format", "encryption"]) {
      expect(() => formatImageOptions({ [key]: "x" }), key).toThrow(/not allowed/);
    }
  });

  it("refuses malformed names and empty or control-character values", () => {
    expect(() => formatImageOptions({ "a=b": "c" })).toThrow(/not a valid/);
    expect(() => formatImageOptions({ "": "c" })).toThrow(/not a valid/);
    expect(() => formatImageOptions({ compat: "" })).toThrow(/non-empty/);
    expect(() => formatImageOptions({ compat: "1.1\n" })).toThrow(/control characters/);
  });
});
