const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/**
 * Parses a size such as `512M`, `2G`, `1.5GiB` or `1048576` into bytes (binary units, as QEMU
 * reads them). `defaultUnit` applies to a bare number. Throws a RangeError naming the input.
 */
export function parseSize(input: string | number, defaultUnit: "B" | "M" | "G" = "B"): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`invalid size ${input}: expected a positive number`);
    return Math.round(input * (UNITS[defaultUnit] ?? 1));
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  if (!match) {
    throw new RangeError(`invalid size '${input}': expected a number with an optional unit, e.g. 512M or 2G`);
  }
  const unitText = (match[2] ?? "").toUpperCase();
  const unit = unitText === "" ? UNITS[defaultUnit] : UNITS[unitText];
  if (unit === undefined) {
    throw new RangeError(`invalid size '${input}': unknown unit '${match[2]}' (use K, M, G or T)`);
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`invalid size '${input}': too large`);
  return bytes;
}

/** Formats bytes with binary units: 536870912 → "512 MiB". */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const text = i === 0 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1);
  return `${text} ${units[i]}`;
}

export const MIB = 1024 ** 2;
export const GIB = 1024 ** 3;
