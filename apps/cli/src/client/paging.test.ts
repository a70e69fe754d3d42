import { describe, expect, it } from "vitest";
import { z } from "zod";
import { readPages, type ListEndpoint, type ListPage, type PageReader } from "./paging.js";

const list: ListEndpoint<number> = { schema: z.object({ items: z.array(z.number()), nextCursor: z.string().nullish() }), path: "/v1/things" };

/** A list of 1..n served in pages, recording each request. */
function pages(n: number, calls: [number | undefined, string | undefined][]): PageReader {
  return (async (_l: ListEndpoint<unknown>, limit: number | undefined, cursor: string | undefined): Promise<ListPage<unknown>> => {
    calls.push([limit, cursor]);
    const start = cursor === undefined ? 0 : Number(cursor);
    const size = limit ?? 2;
    const items = Array.from({ length: Math.max(0, Math.min(size, n - start)) }, (_, i) => start + i + 1);
    return { items, nextCursor: start + size < n ? String(start + size) : null };
  }) as PageReader;
}

describe("readPages", () => {
  it("reads one page without all, and says where the next starts", async () => {
    const calls: [number | undefined, string | undefined][] = [];
    expect(await readPages(pages(5, calls), list, { limit: 3 }, 1000)).toEqual({ items: [1, 2, 3], nextCursor: "3" });
    expect(calls).toEqual([[3, undefined]]);
  });

  it("follows every cursor with all, in pages of limit or else the largest size", async () => {
    const calls: [number | undefined, string | undefined][] = [];
    expect(await readPages(pages(5, calls), list, { all: true, limit: 2 }, 1000)).toEqual({ items: [1, 2, 3, 4, 5], nextCursor: null });
    expect(calls).toEqual([[2, undefined], [2, "2"], [2, "4"]]);
    const big: [number | undefined, string | undefined][] = [];
    await readPages(pages(5, big), list, { all: true }, 1000);
    expect(big).toEqual([[1000, undefined]]);
  });

  it("stops with an error when the API gives the same cursor twice", async () => {
    const stuck: PageReader = (async () => ({ items: [1], nextCursor: "same" })) as PageReader;
    await expect(readPages(stuck, list, { all: true }, 10)).rejects.toThrow("gave the same cursor twice");
  });
});
