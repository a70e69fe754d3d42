import { DEFAULT_PAGE_LIMIT, IaasError, PageQuery } from "@iaas/contracts";
import { validate } from "./validate.js";

/**
 * Cursor paging of a list (keyset): rows come in a stable order over `keys` (the last key unique,
 * e.g. the id), one more row than the limit is read to learn whether a next page exists, and the
 * cursor is the sort key of the page's last row (base64url JSON, opaque to clients). A row added
 * or removed between two pages neither repeats nor hides another one.
 */

/** One column of the sort order; `kind` says how its value travels in the cursor. */
export interface SortKey {
  field: string;
  dir: "asc" | "desc";
  kind: "string" | "date" | "bigint" | "number";
}

export interface PageRequest {
  limit: number;
  /** The decoded cursor: one value per sort key; null for the first page. */
  after: readonly unknown[] | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

const BAD_CURSOR_HINT = "pass the nextCursor of the previous page unchanged, or leave cursor out to start from the first page";

/** `?limit=&cursor=` of a request, checked against the sort keys of the list (400 when bad). */
export function pageRequest(query: unknown, keys: readonly SortKey[], defaultLimit = DEFAULT_PAGE_LIMIT): PageRequest {
  const q = validate(PageQuery, pickPaging(query), "list query");
  return { limit: q.limit ?? defaultLimit, after: q.cursor === undefined ? null : decodeCursor(q.cursor, keys) };
}

/** A page from already validated `limit` and `cursor` (lists whose query schema holds them). */
export function pageOf(limit: number, cursor: string | undefined, keys: readonly SortKey[]): PageRequest {
  return { limit, after: cursor === undefined ? null : decodeCursor(cursor, keys) };
}

/** Prisma `orderBy` for the keys. */
export function pageOrder(keys: readonly SortKey[]): Record<string, "asc" | "desc">[] {
  return keys.map((k) => ({ [k.field]: k.dir }));
}

/**
 * Prisma `where` for rows after the cursor, ANDed with `base`: (k1 > v1) OR (k1 = v1 AND k2 > v2) …
 * (`<` for a descending key). The result has the shape of the model's WhereInput.
 */
export function pageWhere<W extends object>(base: W, keys: readonly SortKey[], page: PageRequest): W {
  if (page.after === null) return base;
  const after = page.after;
  const branches = keys.map((key, i) => {
    const branch: Record<string, unknown> = {};
    for (let j = 0; j < i; j++) branch[keys[j]!.field] = after[j];
    branch[key.field] = { [key.dir === "asc" ? "gt" : "lt"]: after[i] };
    return branch;
  });
  return { AND: [base, { OR: branches }] } as W;
}

/** The Prisma `findMany` arguments of a page: where, orderBy and take (one extra row). */
export function pageArgs<W extends object>(base: W, keys: readonly SortKey[], page: PageRequest): { where: W; orderBy: Record<string, "asc" | "desc">[]; take: number } {
  return { where: pageWhere(base, keys, page), orderBy: pageOrder(keys), take: page.limit + 1 };
}

/** Cuts the extra row off and makes the cursor from the last row kept. */
export function pageResult<R extends object>(rows: readonly R[], keys: readonly SortKey[], page: PageRequest): Page<R> {
  if (rows.length <= page.limit) return { items: [...rows], nextCursor: null };
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1] as Record<string, unknown>;
  return { items, nextCursor: encodeCursor(keys.map((k) => encodeValue(last[k.field], k))) };
}

function pickPaging(query: unknown): Record<string, unknown> {
  const q = (query ?? {}) as Record<string, unknown>;
  return { limit: q["limit"], cursor: q["cursor"] };
}

function encodeValue(value: unknown, key: SortKey): string | number {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" || typeof value === "string") return value;
  throw new Error(`sort key ${key.field} has no value to page by`);
}

function encodeCursor(values: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(values), "utf8").toString("base64url");
}

function decodeCursor(cursor: string, keys: readonly SortKey[]): unknown[] {
  let values: unknown;
  try {
    values = /^[A-Za-z0-9_-]+$/.test(cursor) ? JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) : null;
  } catch {
    values = null;
  }
  if (!Array.isArray(values) || values.length !== keys.length) throw badCursor();
  return keys.map((key, i) => decodeValue(values[i], key));
}

function decodeValue(value: unknown, key: SortKey): unknown {
  switch (key.kind) {
    case "string":
      if (typeof value === "string") return value;
      break;
    case "number":
      if (typeof value === "number" && Number.isFinite(value)) return value;
      break;
    case "bigint":
      if (typeof value === "string" && /^-?\d{1,30}$/.test(value)) return BigInt(value);
      break;
    case "date":
      if (typeof value === "string" && !Number.isNaN(Date.parse(value))) return new Date(value);
      break;
  }
  throw badCursor();
}

function badCursor(): IaasError {
  return new IaasError("VALIDATION_FAILED", "invalid list query: cursor: not a cursor of this list", { hint: BAD_CURSOR_HINT });
}

/** By name, then id: VMs, images, networks, projects. */
export const BY_NAME: readonly SortKey[] = [
  { field: "name", dir: "asc", kind: "string" },
  { field: "id", dir: "asc", kind: "string" },
];
/** Newest first: jobs, exports, backups. */
export const NEWEST_FIRST: readonly SortKey[] = [
  { field: "createdAt", dir: "desc", kind: "date" },
  { field: "id", dir: "desc", kind: "string" },
];
/** Oldest first: tokens, snapshots. */
export const OLDEST_FIRST: readonly SortKey[] = [
  { field: "createdAt", dir: "asc", kind: "date" },
  { field: "id", dir: "asc", kind: "string" },
];
/** By id alone: hosts. */
export const BY_ID: readonly SortKey[] = [{ field: "id", dir: "asc", kind: "string" }];
