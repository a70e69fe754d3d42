import { InvalidArgumentError } from "commander";
import { parseSize } from "@iaas/contracts";

/** A commander argument parser for an integer in [min, max]. */
export function intBetween(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** Seconds: a non-negative number, fractions allowed ("0.5"). */
export function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number of seconds, e.g. 30.");
  return n;
}

/** A size such as 512M or 2G, checked here and sent to the API as written. */
export function size(value: string): string {
  try {
    parseSize(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? `${err.message}.` : String(err));
  }
  return value;
}
