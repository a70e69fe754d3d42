import { describe, expect, it } from "vitest";
import { readSseEvents, SseParser, type SseEvent } from "./sse.js";

function feed(chunks: readonly string[]): SseEvent[] {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

describe("SseParser", () => {
  it("parses id, event and data fields into one event per blank line", () => {
    expect(feed(["id: 1\nevent: state\ndata: {\"a\":1}\n\n"])).toEqual([{ id: "1", event: "state", data: '{"a":1}', retry: null }]);
  });

  it("reassembles events from chunks split mid-line and mid-field", () => {
    const text = "id: 7\nevent: progress\ndata: {\"phase\":\"create-disk\",\"percent\":40}\n\nid: 8\nevent: log\ndata: hello\n\n";
    const whole = feed([text]);
    for (let cut = 1; cut < text.length; cut++) {
      expect(feed([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    }
    expect(feed(text.split(""))).toEqual(whole);
    expect(whole.map((e) => e.id)).toEqual(["7", "8"]);
  });

  it("joins multi-line data with newlines", () => {
    expect(feed(["data: line one\ndata: line two\ndata:\ndata: four\n\n"])[0]?.data).toBe("line one\nline two\n\nfour");
  });

  it("skips comment lines such as heartbeats and counts them", () => {
    const parser = new SseParser();
    const events = [...parser.push(": connected\n\n"), ...parser.push(":heartbeat\n\ndata: x\n: mid-event comment\n\n")];
    expect(events).toEqual([{ id: null, event: "message", data: "x", retry: null }]);
    expect(parser.commentCount).toBe(3);
  });

  it("accepts CRLF and lone CR line endings, even when CR and LF arrive in different chunks", () => {
    expect(feed(["id: 1\r\ndata: a\r\n\r\n", "data: b\r\rdata: c\r", "\n\r", "\n"]).map((e) => e.data)).toEqual(["a", "b", "c"]);
  });

  it("keeps the last event id for later events and for a reconnect", () => {
    const parser = new SseParser();
    const events = parser.push("id: 41\ndata: a\n\ndata: b\n\nid\ndata: c\n\n");
    expect(events.map((e) => e.id)).toEqual(["41", "41", ""]);
    parser.push("id: 42\n\n");
    expect(parser.lastEventId).toBe("42");
  });

  it("removes only one leading space from a value, and reads a field without a colon as empty", () => {
    expect(feed(["data:  two spaces\n\n", "data\n\n"]).map((e) => e.data)).toEqual([" two spaces", ""]);
  });

  it("dispatches a typed event without data (event: end), but not a blank one", () => {
    expect(feed(["event: end\n\n", "\n\n", "id: 3\n\n"])).toEqual([{ id: null, event: "end", data: "", retry: null }]);
  });

  it("reads retry only when it is all digits and ignores unknown fields", () => {
    expect(feed(["retry: 1500\nfoo: bar\ndata: x\n\nretry: 1.5\ndata: y\n\n"]).map((e) => e.retry)).toEqual([1500, null]);
  });

  it("drops a byte-order mark at the start of the stream", () => {
    expect(feed(["\uFEFFdata: x\n\n"])[0]?.data).toBe("x");
  });

  it("discards an event the stream cut off before its blank line", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const enc = new TextEncoder();
        controller.enqueue(enc.encode("id: 1\ndata: {\"n\":"));
        controller.enqueue(enc.encode("1}\n\nid: 2\ndata: partial"));
        controller.close();
      },
    });
    const events: SseEvent[] = [];
    for await (const event of readSseEvents(body)) events.push(event);
    expect(events).toEqual([{ id: "1", event: "message", data: '{"n":1}', retry: null }]);
  });

  it("decodes multi-byte characters split between chunks", async () => {
    const bytes = new TextEncoder().encode("data: héllo ✓\n\n");
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
        controller.close();
      },
    });
    const events: SseEvent[] = [];
    for await (const event of readSseEvents(body)) events.push(event);
    expect(events[0]?.data).toBe("héllo ✓");
  });
});
