import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { z } from "zod";
import { usageError } from "../CliError.js";
import { ApiClient } from "../client/ApiClient.js";
import { resolveConfig, type ResolvedConfig } from "../config.js";
import { Output, type Writer } from "../output/Output.js";
import { runInheritingStdio, type RunProcess } from "../runProcess.js";
import { globalOptionValues } from "./globalOptions.js";

/** Everything the CLI takes from its surroundings; tests pass fakes. */
export interface CliDeps {
  env: Readonly<Record<string, string | undefined>>;
  stdout: Writer;
  stderr: Writer;
  homedir: string;
  /** Aborted on Ctrl-C. */
  interrupt?: AbortSignal;
  fetch?: typeof fetch;
  now?: () => Date;
  readFile?: (file: string) => string | null;
  /** Pauses between retries of a request after a connection error. */
  retryDelaysMs?: readonly number[];
  /** Pauses before reconnecting a dropped event stream. */
  reconnectDelaysMs?: readonly number[];
  /** Pauses before resuming a broken upload or download (its length bounds the tries). */
  transferBackoffMs?: readonly number[];
  /** Animate the spinner on a terminal (default true). */
  animate?: boolean;
  /** Pause between polls of `vm wait` (default 500 ms). */
  pollIntervalMs?: number;
  /** Runs a program with the terminal (`vm ssh`); default: spawn with inherited stdio. */
  runProcess?: RunProcess;
}

/** Builds the context for a command's action (from its options and the program's). */
export type ContextFactory = (command: Command) => CommandContext;

/** The options every command inherits from `iaas`. */
const GlobalOptions = z.object({
  url: z.string().optional(),
  output: z.enum(["table", "json"]).default("table"),
  timeout: z.number().nonnegative().optional(),
  idempotencyKey: z.string().optional(),
});

/** What a command's action works with: the API client, output and the global options. */
export class CommandContext {
  readonly config: ResolvedConfig;
  readonly client: ApiClient;
  readonly out: Output;
  /** `--timeout` in milliseconds; null when not given. */
  readonly timeoutMs: number | null;

  constructor(
    readonly deps: CliDeps,
    command: Command,
  ) {
    const parsed = GlobalOptions.safeParse(globalOptionValues(command));
    if (!parsed.success) throw usageError(`invalid options: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
    const opts = parsed.data;
    const key = opts.idempotencyKey ?? randomUUID();
    if (key.length === 0 || key.length > 200) throw usageError("--idempotency-key must be 1 to 200 characters");
    this.out = new Output(deps.stdout, deps.stderr, opts.output);
    this.timeoutMs = opts.timeout === undefined ? null : opts.timeout * 1000;
    this.config = resolveConfig({ flagUrl: opts.url, env: deps.env, homedir: deps.homedir, readFile: deps.readFile });
    this.client = new ApiClient({
      baseUrl: this.config.url,
      token: this.config.token,
      idempotencyKey: key,
      fetch: deps.fetch,
      interrupt: deps.interrupt,
      retryDelaysMs: deps.retryDelaysMs,
      authHint: authHint(this.config),
      unreachableHint: unreachableHint(this.config),
    });
  }

  now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Pause between polls while waiting for a condition. */
  get pollIntervalMs(): number {
    return this.deps.pollIntervalMs ?? 500;
  }

  /** Runs a program with the terminal and answers its exit code. */
  runProcess(command: string, args: readonly string[]): Promise<number> {
    return (this.deps.runProcess ?? runInheritingStdio)(command, args);
  }

  /** True once the user pressed Ctrl-C. */
  get interrupted(): boolean {
    return this.deps.interrupt?.aborted === true;
  }
}

function authHint(config: ResolvedConfig): string {
  switch (config.tokenSource) {
    case null:
      return `the API needs a token: set IAAS_TOKEN, or "token" in ${config.configPath}`;
    case "IAAS_TOKEN":
      return "the token in IAAS_TOKEN was not accepted; check it against the API's IAAS_API_TOKEN";
    case "config file":
      return `the token in ${config.configPath} was not accepted; check it, or override it with IAAS_TOKEN`;
  }
}

function unreachableHint(config: ResolvedConfig): string {
  const from = config.urlSource === "default" ? "the default URL" : `the URL from ${config.urlSource}`;
  return `this is ${from}; point the CLI at another API with --url or IAAS_URL`;
}
