import { InvalidArgumentError, type Command } from "commander";
import { ExitCode, JobResults, type Vm } from "@iaas/contracts";
import { CliError, interruptedError, usageError } from "../CliError.js";
import { sleep } from "../client/sleep.js";
import { formatDuration } from "../output/format.js";
import type { CommandContext, ContextFactory } from "./CommandContext.js";
import { followToEnd, jobFailedError } from "./jobOutcome.js";
import { parsePort } from "./networkSpecs.js";
import { intBetween, seconds } from "./optionParsers.js";

/** What `vm wait --for` waits for. */
export type WaitCondition =
  | { kind: "running" }
  | { kind: "stopped" }
  | { kind: "ip" }
  | { kind: "console"; pattern: RegExp }
  | { kind: "port"; port: number };

/** `vm wait`'s bound when --timeout is not given. */
export const DEFAULT_WAIT_SECONDS = 120;
/** How much longer than the probe's own timeout the CLI follows a `vm.probe` job (queueing, reporting). */
const PROBE_GRACE_MS = 30_000;

const WAIT_HELP = `
Conditions:
  running          the VM's state is running (a VM that fails into "error" ends the wait: exit 1)
  stopped          the VM's state is stopped
  ip               the NIC (--nic, default 0) has a DHCP lease: the guest took its address
  console=REGEX    the serial console text matches REGEX (JavaScript syntax, ^ and $ match per line)
  port=N           TCP port N of the guest answers on the NIC's address (checked from the VM's
                   host by a vm.probe job)

Exit codes: 0 the condition holds; 1 the VM failed; 2 bad condition, or a VM without the NIC;
4 --timeout (default ${DEFAULT_WAIT_SECONDS}s) passed first.

Examples:
  iaas vm start web1 && iaas vm wait web1 --for running
  iaas vm wait web1 --for ip --timeout 60
  iaas vm wait web1 --for 'console=login:'
  iaas vm wait web1 --for port=22 && iaas vm ssh web1
`;

/** Parses `--for`: running, stopped, ip, console=REGEX or port=N. */
export function parseWaitCondition(text: string): WaitCondition {
  const eq = text.indexOf("=");
  const kind = eq < 0 ? text : text.slice(0, eq);
  const value = eq < 0 ? null : text.slice(eq + 1);
  switch (kind) {
    case "running":
    case "stopped":
    case "ip":
      if (value !== null) throw new InvalidArgumentError(`'${kind}' takes no value.`);
      return { kind };
    case "console": {
      if (value === null || value === "") throw new InvalidArgumentError("console needs a pattern: console=REGEX, e.g. console=login:.");
      try {
        return { kind, pattern: new RegExp(value, "m") };
      } catch (err) {
        throw new InvalidArgumentError(`invalid regular expression '${value}': ${err instanceof Error ? err.message : String(err)}.`);
      }
    }
    case "port":
      if (value === null) throw new InvalidArgumentError("port needs a number: port=N, e.g. port=22.");
      return { kind, port: parsePort(value) };
    default:
      throw new InvalidArgumentError(`unknown condition '${kind}' (running, stopped, ip, console=REGEX or port=N).`);
  }
}

interface VmWaitOptions {
  for: WaitCondition;
  nic?: number;
}

/** `iaas vm wait NAME --for COND [--timeout S]`. */
export function registerVmWaitCommand(vm: Command, ctxOf: ContextFactory): void {
  vm.command("wait")
    .description("wait until a VM is running or stopped, has a DHCP lease, shows a console pattern, or answers on a port")
    .argument("<name>", "VM name or id")
    .requiredOption("--for <condition>", "running, stopped, ip, console=REGEX or port=N", parseWaitCondition)
    .option("--nic <n>", "for ip and port=N: the NIC (0-15; default 0)", intBetween(0, 15))
    .option("--timeout <seconds>", `give up after this long (default ${DEFAULT_WAIT_SECONDS}); exit 4`, seconds)
    .addHelpText("after", WAIT_HELP)
    .action(async (name: string, opts: VmWaitOptions, command: Command) => {
      const ctx = ctxOf(command);
      await waitForVm(ctx, name, opts.for, opts.nic ?? 0);
    });
}

async function waitForVm(ctx: CommandContext, ref: string, condition: WaitCondition, nicIndex: number): Promise<void> {
  const timeoutMs = ctx.timeoutMs ?? DEFAULT_WAIT_SECONDS * 1000;
  switch (condition.kind) {
    case "running":
    case "stopped": {
      const want = condition.kind;
      const vm = await pollVm(ctx, ref, timeoutMs, want, (v) => (v.state === want ? v : null));
      report(ctx, `${vm.name}: ${vm.state}`, { vm: vm.name, condition: want, state: vm.state });
      return;
    }
    case "ip": {
      const found = await pollVm(ctx, ref, timeoutMs, `a DHCP lease on nic ${nicIndex}`, (v) => {
        const nic = v.nics.find((n) => n.index === nicIndex);
        if (nic === undefined) throw noNicError(v, nicIndex);
        if (v.userModeNetworking) {
          throw usageError(
            `vm ${v.name} is on a host without bridges: its user-mode NIC has no DHCP server on the host to report a lease`,
            `wait for the guest to say so instead, e.g. iaas vm wait ${v.name} --for 'console=${nic.ip}'`,
          );
        }
        return nic.lease === null ? null : { vm: v, ip: nic.lease.ip };
      });
      report(ctx, `${found.vm.name}: ip ${found.ip}`, { vm: found.vm.name, condition: "ip", nic: nicIndex, ip: found.ip });
      return;
    }
    case "console": {
      const match = await poll(ctx, timeoutMs, async () => condition.pattern.exec(await ctx.client.consoleText(ref))?.[0] ?? null, () =>
        timeoutErrorFor(ref, `the console to match /${condition.pattern.source}/`, timeoutMs, `see the console with: iaas vm console ${ref}`),
      );
      report(ctx, `${ref}: console matched ${JSON.stringify(match)}`, { vm: ref, condition: "console", pattern: condition.pattern.source, match });
      return;
    }
    case "port":
      await probePort(ctx, ref, condition.port, nicIndex, timeoutMs);
      return;
  }
}

function report(ctx: CommandContext, line: string, json: Record<string, unknown>): void {
  if (ctx.out.json) ctx.out.printJson(json);
  else ctx.out.line(line);
}

/**
 * Polls the VM until `check` answers something. A VM that is in `error` with no job working on
 * it will not get there by itself: exit 1 with its last error.
 */
async function pollVm<T>(ctx: CommandContext, ref: string, timeoutMs: number, what: string, check: (vm: Vm) => T | null): Promise<T> {
  let last: Vm | null = null;
  return poll(
    ctx,
    timeoutMs,
    async () => {
      const vm = await ctx.client.getVm(ref);
      last = vm;
      const done = check(vm);
      if (done !== null) return done;
      if (vm.state === "error" && vm.lockJobId === null) throw vmFailedError(vm, what);
      return null;
    },
    () => {
      const vm: Vm | null = last;
      const now = vm === null ? "" : ` (it is ${vm.state}${vm.lockJobId === null ? "" : `, job ${vm.lockJobId} is working on it`})`;
      return timeoutErrorFor(vm?.name ?? ref, what, timeoutMs, `see it with: iaas vm show ${vm?.name ?? ref}`, now);
    },
  );
}

/** Calls `check` about every poll interval until it answers non-null, or throws `onTimeout()` (exit 4). */
async function poll<T>(ctx: CommandContext, timeoutMs: number, check: () => Promise<T | null>, onTimeout: () => CliError): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await check();
    if (done !== null) return done;
    const left = deadline - Date.now();
    if (left <= 0) throw onTimeout();
    await sleep(Math.min(ctx.pollIntervalMs, left), ctx.deps.interrupt).catch(() => {
      throw interruptedError();
    });
  }
}

function timeoutErrorFor(vm: string, what: string, timeoutMs: number, hint: string, now = ""): CliError {
  return new CliError(`vm ${vm}: gave up waiting for ${what} after ${formatDuration(timeoutMs)}${now}`, {
    exitCode: ExitCode.WAIT_TIMEOUT,
    hint: `${hint}; wait longer with --timeout SECONDS`,
  });
}

function vmFailedError(vm: Vm, what: string): CliError {
  const reason = vm.lastError === null ? "" : `: ${vm.lastError.message}`;
  return new CliError(`vm ${vm.name} is in state error while waiting for ${what}${reason}`, {
    exitCode: ExitCode.JOB_FAILED,
    hint: vm.lastError?.hint ?? `see what happened with: iaas vm show ${vm.name}`,
    code: vm.lastError?.code ?? null,
  });
}

function noNicError(vm: Vm, index: number): CliError {
  if (vm.nics.length === 0) {
    const why = vm.userModeNetworking ? " (it uses user-mode networking, which has no DHCP lease to wait for)" : "";
    return usageError(`vm ${vm.name} has no NIC${why}`, `add one with: iaas vm nic add ${vm.name} --network default`);
  }
  return usageError(`vm ${vm.name} has no NIC ${index} (it has ${vm.nics.map((n) => n.index).join(", ")})`, `see its NICs with: iaas vm ip ${vm.name}`);
}

/** `--for port=N`: a `vm.probe` job on the VM's host waits for the port; its WAIT_TIMEOUT is exit 4. */
async function probePort(ctx: CommandContext, ref: string, port: number, nic: number, timeoutMs: number): Promise<void> {
  const timeoutSeconds = Math.min(3600, Math.max(1, Math.ceil(timeoutMs / 1000)));
  const accepted = await ctx.client.probeVm(ref, { port, nic, timeoutSeconds });
  const job = await followToEnd(ctx, accepted.job, timeoutSeconds * 1000 + PROBE_GRACE_MS);
  const name = accepted.vm?.name ?? job.targetName ?? ref;
  if (job.state !== "succeeded") {
    if (job.error?.code === "WAIT_TIMEOUT") {
      throw new CliError(job.error.message, {
        exitCode: ExitCode.WAIT_TIMEOUT,
        hint: job.error.hint ?? `is anything listening on port ${port} in the guest? see the console with: iaas vm console ${name}`,
        code: job.error.code,
      });
    }
    throw jobFailedError(job);
  }
  const result = JobResults["vm.probe"].safeParse(job.result);
  const ip = result.success ? result.data.ip : null;
  const elapsed = result.success ? ` (after ${formatDuration(result.data.elapsedMs)})` : "";
  report(ctx, `${name}: port ${port} answers${ip === null ? "" : ` at ${ip}`}${elapsed}`, {
    vm: name,
    condition: "port",
    port,
    nic,
    ip,
    elapsedMs: result.success ? result.data.elapsedMs : null,
    jobId: job.id,
  });
}
