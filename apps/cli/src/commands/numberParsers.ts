// Option parsers that need nothing but commander: the program's own options use them before any
// command module (and the contracts with zod) is loaded.
import { InvalidArgumentError } from "commander";

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
