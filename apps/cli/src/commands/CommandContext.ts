import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { stringify } from "yaml";
import { z } from "zod";
import { usageError } from "../CliError.js";
import { ApiClient } from "../client/ApiClient.js";
import { configFilePath, resolveConfig, type ResolvedConfig } from "../config.js";
import { colourEnabled } from "../output/colour.js";
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

/**
 * Builds the context for a command's action (from its options and the program's); with `target`,
 * for that API, token and project instead of the configured ones (`iaas login`).
 */
export type ContextFactory = (command: Command, target?: ContextTarget) => CommandContext;

/** An API, token and project given on the command line rather than configured (`iaas login`). */
export interface ContextTarget {
  url: string;
  token: string;
  tokenSource: "--token" | "IAAS_TOKEN";
  project: string | null;
}

/** The options every command inherits from `iaas`. */
const GlobalOptions = z.object({
  url: z.string().optional(),
  context: z.string().optional(),
  project: z.string().optional(),
  output: z.enum(["table", "json", "yaml"]).default("table"),
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
    target?: ContextTarget,
  ) {
    const parsed = GlobalOptions.safeParse(globalOptionValues(command));
    if (!parsed.success) throw usageError(`invalid options: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
    const opts = parsed.data;
    const key = opts.idempotencyKey ?? randomUUID();
    if (key.length === 0 || key.length > 200) throw usageError("--idempotency-key must be 1 to 200 characters");
    this.out = new Output(deps.stdout, deps.stderr, opts.output, (value) => stringify(value), colourEnabled(deps.stderr, deps.env));
    this.timeoutMs = opts.timeout === undefined ? null : opts.timeout * 1000;
    this.config =
      target === undefined
        ? resolveConfig({ flagUrl: opts.url, flagContext: opts.context, flagProject: opts.project, env: deps.env, homedir: deps.homedir, readFile: deps.readFile })
        : {
            url: target.url,
            urlSource: "--url",
            token: target.token,
            tokenSource: target.tokenSource,
            project: target.project,
            projectSource: target.project === null ? null : "--project",
            context: null,
            configPath: configFilePath(deps.env, deps.homedir),
            configFound: false,
          };
    this.client = new ApiClient({
      baseUrl: this.config.url,
      token: this.config.token,
      project: this.config.project,
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

/** The hint for a 401/403 whose answer carries none: where the token came from, and what to do. */
function authHint(config: ResolvedConfig): string {
  switch (config.tokenSource) {
    case null:
      return "the API needs a token: log in with `iaas login --url URL --token T`, or set IAAS_TOKEN";
    case "--token":
      return "the token given was not accepted; check it, or ask an admin for a new one (`iaas token create`)";
    case "IAAS_TOKEN":
      return "the token in IAAS_TOKEN was not accepted (or its role does not allow this); check it with `iaas whoami`, or ask an admin for a new one (`iaas token create`)";
    case "config file":
      return `the token in ${config.configPath} was not accepted (or its role does not allow this); check it with \`iaas whoami\`, or log in again (\`iaas login\`)`;
  }
}

function unreachableHint(config: ResolvedConfig): string {
  const from = config.urlSource === "default" ? "the default URL" : `the URL from ${config.urlSource}`;
  return `this is ${from}; point the CLI at another API with --url or IAAS_URL`;
}
