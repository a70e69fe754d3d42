/** One Server-Sent Event as dispatched by a parser. */
export interface SseEvent {
  /** The last event id seen on the stream (ids persist across events, as in EventSource). */
  id: string | null;
  /** The `event:` field, or "message" when absent. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The `retry:` field, when this event carried one. */
  retry: number | null;
}

/**
 * Incremental parser for the `text/event-stream` format (WHATWG HTML §9.2.6). Feed it text in
 * chunks of any size, split anywhere (mid-line, between CR and LF); it returns the events each
 * chunk completes. Comment lines (`: heartbeat`) are skipped. One deviation from the standard:
 * an event that names its type but carries no data (`event: end` then a blank line) is still
 * dispatched, so a stream can signal its end without a payload.
 */
export class SseParser {
  private buffer = "";
  private pendingLf = false;
  private started = false;
  private dataLines: string[] = [];
  private eventType = "";
  private retry: number | null = null;
  private lastId: string | null = null;
  private comments = 0;

  /** The last event id the stream has set (what a reconnect sends as `Last-Event-ID`). */
  get lastEventId(): string | null {
    return this.lastId;
  }

  /** Comment lines seen so far (servers send them as heartbeats). */
  get commentCount(): number {
    return this.comments;
  }

  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingLf && text.length > 0) {
      this.pendingLf = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    const buffer = this.buffer + text;
    const events: SseEvent[] = [];
    let lineStart = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.processLine(buffer.slice(lineStart, i), events);
      if (c === 13) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingLf = true;
        }
      }
      lineStart = i + 1;
    }
    this.buffer = buffer.slice(lineStart);
    return events;
  }

  /** Ends the stream: an event not yet closed by a blank line is discarded, as the standard says. */
  end(): void {
    this.buffer = "";
    this.dataLines = [];
    this.eventType = "";
    this.retry = null;
  }

  private processLine(line: string, events: SseEvent[]): void {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(":")) {
      this.comments++;
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.dataLines.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  private dispatch(events: SseEvent[]): void {
    if (this.dataLines.length > 0 || this.eventType !== "") {
      events.push({
        id: this.lastId,
        event: this.eventType === "" ? "message" : this.eventType,
        data: this.dataLines.join("\n"),
        retry: this.retry,
      });
    }
    this.dataLines = [];
    this.eventType = "";
    this.retry = null;
  }
}

/** Reads a response body as Server-Sent Events until the stream ends or fails. */
export async function* readSseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent, void, undefined> {
  const parser = new SseParser();
  const decoder = new TextDecoder("utf-8");
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    parser.end();
  } finally {
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
