import { Prisma } from "./generated/prisma/client.js";

/**
 * True when `err` is a unique-constraint violation (Prisma P2002, or a raw query's P2010 caused by
 * one). With `field`, only when that column (schema name, e.g. "idempotencyKey") is part of the
 * violated constraint.
 */
export function isUniqueViolation(err: unknown, field?: string): boolean {
  if (isPgUniqueViolation(err)) return field === undefined || pgViolatedColumns(err.detail).includes(field);
  if (!(err instanceof Prisma.PrismaClientKnownRequestError)) return false;
  const adapterCause = driverAdapterCause(err.meta);
  const unique = err.code === "P2002" || (err.code === "P2010" && adapterCause?.["kind"] === "UniqueConstraintViolation");
  if (!unique) return false;
  return field === undefined || violatedNames(err.meta, adapterCause).includes(field);
}

/** A node-postgres error (statements run on the pool directly): SQLSTATE 23505. */
function isPgUniqueViolation(err: unknown): err is { code: string; detail?: string } {
  return err instanceof Error && (err as { code?: unknown }).code === "23505" && !(err instanceof Prisma.PrismaClientKnownRequestError);
}

/** The columns named in Postgres' detail line: `Key ("idempotencyKey")=(k) already exists.` */
function pgViolatedColumns(detail: string | undefined): string[] {
  const columns = /^Key \((.*?)\)=/.exec(detail ?? "")?.[1] ?? "";
  return columns.split(",").map(unquoteIdentifier).filter((c) => c !== "");
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** With driver adapters the details sit in `meta.driverAdapterError.cause`. */
function driverAdapterCause(meta: unknown): Record<string, unknown> | undefined {
  return asRecord(asRecord(asRecord(meta)?.["driverAdapterError"])?.["cause"]);
}

/** Column (or index) names of the violated constraint, unquoted: adapter-pg reports `"idempotencyKey"`. */
function violatedNames(meta: unknown, cause: Record<string, unknown> | undefined): string[] {
  const constraint = asRecord(cause?.["constraint"]);
  const candidates: unknown[] = [asRecord(meta)?.["target"], constraint?.["fields"], constraint?.["index"]];
  return candidates
    .flatMap((value) => (Array.isArray(value) ? value : [value]))
    .filter((value): value is string => typeof value === "string")
    .map(unquoteIdentifier);
}

function unquoteIdentifier(name: string): string {
  const trimmed = name.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
    ? trimmed.slice(1, -1).replaceAll('""', '"')
    : trimmed;
}
