import { IaasError, type ImageFormat } from "@iaas/contracts";

/**
 * `-o` options for an exported image that other hypervisors read without surprises:
 * VMDK as one streamOptimized file (what OVF/vSphere imports), VHD dynamic with the exact size in
 * the footer (Hyper-V/Azure read the footer, Virtual PC the CHS geometry), VHDX dynamic, qcow2 v3.
 */
export function exportOptions(format: ImageFormat): Record<string, string> {
  switch (format) {
    case "qcow2":
      return { compat: "1.1" };
    case "vmdk":
      return { subformat: "streamOptimized" };
    case "vpc":
      return { subformat: "dynamic", force_size: "on" };
    case "vhdx":
      return { subformat: "dynamic" };
    case "vdi":
    case "raw":
      return {};
  }
}

/** Options that make the output refer to other files or need secrets: never passed through `-o`. */
const REFUSED_KEYS = /^(backing_file|backing_fmt|data_file|data_file_raw|encrypt(\..*)?|encryption)$/;
const KEY = /^[a-z][a-z0-9_.-]{0,63}$/;

function hasControlCharacter(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function badOption(message: string): IaasError {
  return new IaasError("QEMU_IMG_FAILED", message, { retryable: false, hint: "pass only format options such as compat=1.1 or subformat=streamOptimized" });
}

/**
 * Builds the argument of `qemu-img -o` from key/value pairs: keys are checked against a strict
 * pattern, options that would make the image reference other files are refused, and commas in
 * values are doubled (QEMU's escape). Returns null for no options.
 */
export function formatImageOptions(options: Readonly<Record<string, string>>): string | null {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (!KEY.test(key)) throw badOption(`'${key}' is not a valid qemu-img option name`);
    if (REFUSED_KEYS.test(key)) throw badOption(`the qemu-img option '${key}' is not allowed: exported images must be self-contained`);
    if (typeof value !== "string" || value === "" || hasControlCharacter(value)) throw badOption(`the value of qemu-img option '${key}' must be non-empty text without control characters`);
    parts.push(`${key}=${value.replaceAll(",", ",,")}`);
  }
  return parts.length === 0 ? null : parts.join(",");
}
