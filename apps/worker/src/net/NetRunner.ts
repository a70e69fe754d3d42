import { run, type RunOptions, type RunResult } from "@iaas/hypervisor";

/**
 * Runs the host's networking commands (`ip`, `bridge`, `nft`, `sysctl`, `dnsmasq`) and QEMU in the
 * worker's network namespace: the host's own one, or `IAAS_NETNS` through `ip netns exec`, so a
 * test can run several simulated hosts on one machine. Unix sockets and pidfiles stay reachable
 * from the worker either way (they are files).
 */
export class NetRunner {
  constructor(readonly netns: string | undefined) {}

  /** The argv that runs `argv` inside this runner's namespace. */
  wrap(argv: readonly string[]): string[] {
    return this.netns === undefined ? [...argv] : ["ip", "netns", "exec", this.netns, ...argv];
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.wrap(argv), { timeoutMs: 30_000, ...opts });
  }

  /** Runs a command whose output is JSON (`ip -j …`, `bridge -j …`). */
  async json<T>(argv: readonly string[]): Promise<T> {
    const { stdout } = await this.run(argv);
    return (stdout.trim() === "" ? [] : JSON.parse(stdout)) as T;
  }

  /** Reads a sysctl in the namespace. */
  async sysctl(key: string): Promise<string> {
    return (await this.run(["sysctl", "-n", key])).stdout.trim();
  }

  async setSysctl(key: string, value: string): Promise<void> {
    if ((await this.sysctl(key).catch(() => "")) === value) return;
    await this.run(["sysctl", "-q", "-w", `${key}=${value}`]);
  }
}
