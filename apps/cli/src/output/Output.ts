import type { CliError } from "../CliError.js";
import { paint } from "./colour.js";
import { sanitizeText } from "./sanitize.js";

/** Where the CLI writes: process.stdout/stderr, or a fake in tests. */
export interface Writer {
  write(chunk: string | Uint8Array): boolean;
  isTTY?: boolean;
  columns?: number;
}

export type OutputFormat = "table" | "json" | "yaml";

/**
 * Results go to stdout (tables or JSON); errors, hints and progress go to stderr. Text lines
 * have their control characters made visible (sanitizeText): much of what they hold was written
 * by others (names, labels, descriptions, error messages, job events). JSON escapes its own.
 */
export class Output {
  constructor(
    readonly stdout: Writer,
    readonly stderr: Writer,
    readonly format: OutputFormat,
    /** Renders a value as YAML (given by the command context, so that `iaas --version` loads no YAML library). */
    private readonly toYaml?: (value: unknown) => string,
    /** Colour the `error:` and `hint:` labels on stderr (see colourEnabled: a terminal, no NO_COLOR). */
    private readonly colourStderr = false,
  ) {}

  /** True for structured output (`-o json` or `-o yaml`): commands print data with printJson. */
  get json(): boolean {
    return this.format === "json" || this.format === "yaml";
  }

  /** A line of the command's result. */
  line(text = ""): void {
    this.stdout.write(`${sanitizeText(text)}\n`);
  }

  /** An API object as JSON (`-o json`) or YAML (`-o yaml`): the same data either way. */
  printJson(value: unknown): void {
    if (this.format === "yaml" && this.toYaml !== undefined) {
      const text = this.toYaml(JSON.parse(JSON.stringify(value)) as unknown);
      this.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
      return;
    }
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A remark for the user that is not part of the result. */
  note(text: string): void {
    this.stderr.write(`${sanitizeText(text)}\n`);
  }

  /** `error: <message>`, any detail lines, then `hint: <hint>`. */
  error(err: CliError | Error): void {
    this.stderr.write(`${paint(this.colourStderr, "red", "error:")} ${sanitizeText(err.message)}\n`);
    if ("details" in err) for (const detail of err.details) this.stderr.write(`${sanitizeText(detail)}\n`);
    if ("hint" in err && err.hint !== null && err.hint !== "") this.stderr.write(`${paint(this.colourStderr, "yellow", "hint:")} ${sanitizeText(err.hint)}\n`);
  }
}
