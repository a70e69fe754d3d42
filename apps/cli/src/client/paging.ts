import type { z } from "zod";
import type { Query } from "./HttpTransport.js";

/** How much of a list to read: one page of `limit` items (the API's default without it), or `all` pages. */
export interface Paging {
  limit?: number;
  /** Follow `nextCursor` to the end; `limit` is then the size of each page. */
  all?: boolean;
}

/** Every item of a list, in pages of the API's largest size. */
export const ALL_PAGES: Paging = { all: true };

/** What a list command shows: the items, and the cursor of the page after them (null at the end). */
export interface ListPage<T> {
  items: T[];
  nextCursor: string | null;
}

/** A list endpoint of the API and the schema of one of its pages. */
export interface ListEndpoint<T> {
  schema: z.ZodType<{ items: T[]; nextCursor?: string | null | undefined }>;
  path: string;
  query?: Query;
}

/** Reads one page of a list: `limit` and `cursor` go to the API as `?limit=&cursor=`. */
export type PageReader = <T>(list: ListEndpoint<T>, limit: number | undefined, cursor: string | undefined) => Promise<ListPage<T>>;

/**
 * One page, or with `all` every page in turn (`maxLimit` items each unless `limit` says
 * otherwise). Stops with an error rather than loop when the API repeats a cursor.
 */
export async function readPages<T>(read: PageReader, list: ListEndpoint<T>, paging: Paging, maxLimit: number): Promise<ListPage<T>> {
  if (paging.all !== true) return read(list, paging.limit, undefined);
  const items: T[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (;;) {
    const page = await read(list, paging.limit ?? maxLimit, cursor);
    items.push(...page.items);
    if (page.nextCursor === null) return { items, nextCursor: null };
    if (seen.has(page.nextCursor)) throw new Error(`${list.path} gave the same cursor twice; stopped after ${items.length} items`);
    seen.add(page.nextCursor);
    cursor = page.nextCursor;
  }
}
