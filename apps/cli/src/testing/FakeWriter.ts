import type { Writer } from "../output/Output.js";

/** Collects what the CLI writes, as a terminal (isTTY) or a pipe would receive it. */
export class FakeWriter implements Writer {
  text = "";

  constructor(
    readonly isTTY = false,
    readonly columns = 120,
  ) {}

  write(chunk: string | Uint8Array): boolean {
    this.text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }

  lines(): string[] {
    return this.text.split("\n").filter((line) => line !== "");
  }
}
