import { InvalidArgumentError } from "commander";
import { Labels, parseSize } from "@iaas/contracts";

export { intBetween, seconds } from "./numberParsers.js";


/** A size such as 512M or 2G, checked here and sent to the API as written. */
export function size(value: string): string {
  try {
    parseSize(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? `${err.message}.` : String(err));
  }
  return value;
}

/** A sha256 in hex (64 digits; upper case is accepted and lowered). */
export function sha256Hex(value: string): string {
  const hex = value.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new InvalidArgumentError("expected a sha256: 64 hex digits.");
  return hex;
}

/** Collects repeated `--label key=value` options into a record (a repeated key keeps the last value). */
export function labelInto(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("expected key=value, e.g. os=debian.");
  const key = value.slice(0, eq);
  const text = value.slice(eq + 1);
  const checked = Labels.safeParse({ [key]: text });
  if (!checked.success) throw new InvalidArgumentError(`${checked.error.issues.map((i) => i.message).join("; ")}.`);
  return { ...previous, [key]: text };
}
