import type { CliError } from "../CliError.js";

/** Where the CLI writes: process.stdout/stderr, or a fake in tests. */
export interface Writer {
  write(chunk: string | Uint8Array): boolean;
  isTTY?: boolean;
  columns?: number;
}

export type OutputFormat = "table" | "json";

/** Results go to stdout (tables or JSON); errors, hints and progress go to stderr. */
export class Output {
  constructor(
    readonly stdout: Writer,
    readonly stderr: Writer,
    readonly format: OutputFormat,
  ) {}

  get json(): boolean {
    return this.format === "json";
  }

  /** A line of the command's result. */
  line(text = ""): void {
    this.stdout.write(`${text}\n`);
  }

  /** An API object as JSON (for `-o json`). */
  printJson(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A remark for the user that is not part of the result. */
  note(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  /** `error: <message>`, any detail lines, then `hint: <hint>`. */
  error(err: CliError | Error): void {
    this.stderr.write(`error: ${err.message}\n`);
    if ("details" in err) for (const detail of err.details) this.stderr.write(`${detail}\n`);
    if ("hint" in err && err.hint !== null && err.hint !== "") this.stderr.write(`hint: ${err.hint}\n`);
  }
}
