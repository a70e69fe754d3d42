import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

// Several "hypervisor hosts" on one machine, each in a network namespace of its own, joined by a
// bridge in a "lab" namespace that stands for the underlay switch and the outside world:
//
//   iaas-<tag>-lab:  lab0 (bridge, 192.168.240.1/24) ── h1 ── h2 ...   no forwarding, no routes out
//   iaas-<tag>-1:    eth0 192.168.240.11/24, default via .1, ip_forward=1
//   iaas-<tag>-2:    eth0 192.168.240.12/24, default via .1, ip_forward=1
//
// Everything (links, addresses, routes, sysctls, processes) lives inside namespaces made here and
// goes away with destroy(); nothing in the root namespace is touched. Needs root.

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Listener {
  readonly port: number;
  /** Peer addresses of the connections accepted so far, oldest first. */
  connections(): string[];
  close(): Promise<void>;
}

export interface NetLabOptions {
  /** Name tag of the namespaces (default: 4 random hex digits, re-drawn if taken). */
  tag?: string;
}

/** The line a NetLab listener answers each connection with. */
export const LISTENER_GREETING = "IAAS-NETLAB-HELLO";

const SUBNET_PREFIX = "192.168.240";
const LAB_ADDRESS = `${SUBNET_PREFIX}.1`;

// Runs a command, never throwing for a non-zero exit: the caller decides what a failure means.
function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error("run: empty argv");
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
      if (typeof e.code === "number") return resolve({ code: e.code, stdout, stderr });
      if (e.killed || e.signal) return resolve({ code: 128, stdout, stderr: `${stderr}${argv.join(" ")}: killed (${e.signal ?? "timeout"})` });
      reject(new Error(`${argv.join(" ")}: ${e.message}`));
    });
  });
}

async function must(argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Names of the network namespaces `ip netns` knows, all of them (not only a lab's). */
export async function namespaces(): Promise<string[]> {
  // `ip netns list` prints "NAME" or "NAME (id: N)" per line.
  const out = await must(["ip", "netns", "list"]);
  return out.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n !== "");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let availability: Promise<{ ok: boolean; reason?: string }> | undefined;

/** Whether NetLab can work here (root, iproute2, namespaces); the reason when not, for a test skip. */
export function netlabAvailable(): Promise<{ ok: boolean; reason?: string }> {
  availability ??= (async () => {
    if (process.platform !== "linux") return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
    if (process.getuid?.() !== 0) return { ok: false, reason: "network namespaces need root: run the network tests as root" };
    const version = await run(["ip", "-V"]).catch((err: Error) => ({ code: -1, stdout: "", stderr: err.message }));
    if (version.code !== 0) return { ok: false, reason: `iproute2's \`ip\` is not usable: ${version.stderr.trim()} (apt-get install iproute2)` };
    const probe = `iaas-probe-${randomBytes(3).toString("hex")}`;
    const added = await run(["ip", "netns", "add", probe]);
    if (added.code !== 0) return { ok: false, reason: `cannot create a network namespace: ${added.stderr.trim()}` };
    const deleted = await run(["ip", "netns", "del", probe]);
    if (deleted.code !== 0) return { ok: false, reason: `cannot delete network namespace ${probe}: ${deleted.stderr.trim()}` };
    return { ok: true };
  })();
  return availability;
}

export class NetLab {
  private readonly children = new Set<ChildProcess>();
  private readonly created: string[] = [];
  private destroying: Promise<void> | undefined;

  private constructor(
    readonly tag: string,
    readonly hosts: readonly string[],
  ) {}

  /** Builds the lab: one namespace per host (in the order given) plus the lab namespace. */
  static async create(hosts: string[], opts: NetLabOptions = {}): Promise<NetLab> {
    if (new Set(hosts).size !== hosts.length) throw new Error(`NetLab.create: duplicate host names in ${hosts.join(", ")}`);
    if (hosts.length > 200) throw new Error("NetLab.create: at most 200 hosts fit the /24 underlay");
    let tag = opts.tag;
    if (tag === undefined) {
      const taken = await namespaces();
      do tag = randomBytes(2).toString("hex");
      while (taken.some((n) => n.startsWith(`iaas-${tag}-`)));
    }
    const lab = new NetLab(tag, hosts);
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy().catch(() => undefined); // the build error is the one to report
      throw err;
    }
    return lab;
  }

  get labNs(): string {
    return `iaas-${this.tag}-lab`;
  }

  get labAddress(): string {
    return LAB_ADDRESS;
  }

  hostNs(host: string): string {
    return `iaas-${this.tag}-${this.indexOf(host)}`;
  }

  hostAddress(host: string): string {
    return `${SUBNET_PREFIX}.${10 + this.indexOf(host)}`;
  }

  /** `ip netns exec NS ...argv` (no shell); a non-zero exit is returned, not thrown. */
  exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(["ip", "netns", "exec", ns, ...argv], opts);
  }

  /**
   * Starts a long-running process inside a namespace; destroy() kills it (and whatever it left
   * behind in the namespace). With the default stdio "pipe", read stdout and stderr: a chatty
   * process whose pipes nobody drains stops when they fill up.
   */
  spawn(ns: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: "pipe" | "ignore" | "inherit" } = {}): ChildProcess {
    const out = opts.stdio ?? "pipe";
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { env: opts.env ?? process.env, stdio: ["ignore", out, out] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    child.on("error", () => this.children.delete(child));
    return child;
  }

  /**
   * A TCP listener on address:port (default 0.0.0.0) inside a namespace that records each peer's
   * address and answers LISTENER_GREETING. Resolves once it is listening.
   */
  async listen(ns: string, port: number, proto: "tcp" = "tcp", address = "0.0.0.0"): Promise<Listener> {
    if (proto !== "tcp") throw new Error(`NetLab.listen: only tcp is supported, not ${String(proto)}`);
    const script = [
      'const net = require("node:net");',
      "const server = net.createServer((s) => {",
      '  console.log("CONNECT " + s.remoteAddress);',
      `  s.on("error", () => {}); s.end(${JSON.stringify(`${LISTENER_GREETING}\n`)});`,
      "});",
      'server.on("error", (e) => { console.error(e.message); process.exit(1); });',
      'server.listen(Number(process.argv[1]), process.argv[2], () => console.log("LISTENING"));',
      'process.on("SIGTERM", () => process.exit(0));',
    ].join("\n");
    const child = this.spawn(ns, [process.execPath, "-e", script, String(port), address]);
    const peers: string[] = [];
    let stderr = "";
    let pending = "";
    const listening = new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          if (line === "LISTENING") resolve();
          else if (line.startsWith("CONNECT ")) peers.push(line.slice("CONNECT ".length));
        }
      });
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`listener on ${ns}:${port} exited ${code}: ${stderr.trim()}`)));
    });
    await listening;
    return {
      port,
      connections: () => [...peers],
      close: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      },
    };
  }

  /**
   * Kills what the lab started and every process still inside its namespaces, then deletes the
   * namespaces (their veths and bridge go with them). Idempotent; throws if a namespace survives.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private indexOf(host: string): number {
    const i = this.hosts.indexOf(host);
    if (i < 0) throw new Error(`NetLab: unknown host '${host}' (hosts: ${this.hosts.join(", ")})`);
    return i + 1;
  }

  private async addNamespace(ns: string): Promise<void> {
    await must(["ip", "netns", "add", ns]);
    this.created.push(ns);
    await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }

  private async build(): Promise<void> {
    const lab = this.labNs;
    await this.addNamespace(lab);
    await must(["ip", "-n", lab, "link", "add", "lab0", "type", "bridge", "forward_delay", "0"]);
    await must(["ip", "-n", lab, "addr", "add", `${LAB_ADDRESS}/24`, "dev", "lab0"]);
    await must(["ip", "-n", lab, "link", "set", "lab0", "up"]);
    // A new namespace does not forward; say so anyway: the lab is where traffic ends.
    await must(["ip", "netns", "exec", lab, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
    for (const host of this.hosts) {
      const ns = this.hostNs(host);
      const port = `h${this.indexOf(host)}`;
      await this.addNamespace(ns);
      await must(["ip", "-n", lab, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      await must(["ip", "-n", lab, "link", "set", port, "master", "lab0", "up"]);
      await must(["ip", "-n", ns, "addr", "add", `${this.hostAddress(host)}/24`, "dev", "eth0"]);
      await must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      await must(["ip", "-n", ns, "route", "add", "default", "via", LAB_ADDRESS]);
      await must(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
  }

  private async teardown(): Promise<void> {
    await Promise.all(
      [...this.children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await exited;
      }),
    );
    const problems: string[] = [];
    // Hosts first, the lab last (reverse order of creation).
    for (const ns of [...this.created].reverse()) {
      // Processes that outlived their parent (daemonized QEMU, dnsmasq) keep a namespace alive.
      for (let attempt = 0; attempt < 50; attempt++) {
        const pids = (await run(["ip", "netns", "pids", ns])).stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // exited meanwhile
          }
        }
        await sleep(20);
      }
      const del = await run(["ip", "netns", "del", ns]);
      if (del.code !== 0 && !/No such file/.test(del.stderr)) problems.push(`ip netns del ${ns}: ${del.stderr.trim()}`);
    }
    const left = (await namespaces()).filter((n) => this.created.includes(n));
    if (left.length > 0) problems.push(`namespaces still present: ${left.join(", ")}`);
    if (problems.length > 0) throw new Error(`NetLab.destroy: ${problems.join("; ")}`);
  }
}
