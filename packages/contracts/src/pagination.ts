import { z } from "zod";

/** Most items one page of a list may hold (`?limit=`). */
export const MAX_PAGE_LIMIT = 1000;
/** Items in a page when the request names no limit (lists that had their own default keep it). */
export const DEFAULT_PAGE_LIMIT = 100;

/** `?limit=` of a list: an integer from 1 to MAX_PAGE_LIMIT. */
export const PageLimit = z.coerce
  .number({ error: `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}` })
  .int({ error: `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}` })
  .min(1, { error: `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}` })
  .max(MAX_PAGE_LIMIT, { error: `limit must be an integer from 1 to ${MAX_PAGE_LIMIT}` });

/** `?cursor=`: the `nextCursor` of the page before, as the API gave it (opaque). */
export const PageCursor = z.string().min(1, { error: "cursor must not be empty" }).max(512, { error: "cursor is too long" });

/** The paging members of every list query: `?limit=N&cursor=C`. */
export const PageQuery = z.object({
  limit: PageLimit.optional(),
  cursor: PageCursor.optional(),
});
export type PageQuery = z.infer<typeof PageQuery>;
