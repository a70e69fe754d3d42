import { sanitizeLine } from "./sanitize.js";

/**
 * Aligns rows under headers with two spaces between columns and no trailing blanks.
 * An empty table still prints its header line. Cells are one line each, control characters
 * (newlines included) made visible by sanitizeLine before the columns are measured.
 */
export function formatTable(headers: readonly string[], rawRows: readonly (readonly string[])[]): string {
  const rows = rawRows.map((row) => row.map(sanitizeLine));
  const widths = headers.map((header, col) => Math.max(header.length, ...rows.map((row) => (row[col] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    widths
      .map((width, col) => (col === widths.length - 1 ? (cells[col] ?? "") : (cells[col] ?? "").padEnd(width)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/**
 * `key: value` lines with the values aligned, for `show` commands. Null values print as "-"; a
 * value stays on its line (its control characters, newlines included, made visible).
 */
export function formatFields(fields: readonly (readonly [string, string | number | null])[]): string {
  const width = Math.max(0, ...fields.map(([key]) => key.length + 1));
  return fields
    .map(([key, value]) => `${`${key}:`.padEnd(width)} ${value === null || value === "" ? "-" : sanitizeLine(String(value))}`.trimEnd())
    .join("\n");
}
