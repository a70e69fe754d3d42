import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { makeJob, makeNic, makeVm, stateEvent, VM_ID } from "../testing/fixtures.js";
import type { JobScript } from "../testing/jobApi.js";
import { bodyOf, json, problem, routeTable, sequence, text, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";
import { parseWaitCondition } from "./vmWait.js";

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>, job?: JobScript): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table, job));
  return server;
}

const vmIs = (overrides: Parameters<typeof makeVm>[0]) => json(makeVm(overrides));
const gets = (s: ScriptedServer, path: string) => s.requests.filter((r) => r.method === "GET" && r.path === path).length;

describe("vm wait --for parsing", () => {
  it("knows running, stopped, ip, console=REGEX and port=N", () => {
    expect(parseWaitCondition("running")).toEqual({ kind: "running" });
    expect(parseWaitCondition("ip")).toEqual({ kind: "ip" });
    expect(parseWaitCondition("port=22")).toEqual({ kind: "port", port: 22 });
    const console = parseWaitCondition("console=login: ?$");
    expect(console.kind === "console" && console.pattern.source).toBe("login: ?$");
    expect(() => parseWaitCondition("console=a(")).toThrow(/invalid regular expression 'a\('/);
    expect(() => parseWaitCondition("console=")).toThrow(/console needs a pattern/);
    expect(() => parseWaitCondition("port=0")).toThrow(/port '0' is not a port number/);
    expect(() => parseWaitCondition("port")).toThrow(/port needs a number/);
    expect(() => parseWaitCondition("running=1")).toThrow(/'running' takes no value/);
    expect(() => parseWaitCondition("up")).toThrow(/unknown condition 'up'/);
  });
});

describe("vm wait --for running/stopped", () => {
  it("polls the VM until it runs, then prints a line", async () => {
    const s = await serve({ "GET /v1/vms/web1": sequence(vmIs({ state: "stopped" }), vmIs({ state: "starting", lockJobId: "j" }), vmIs({ state: "running" })) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "running"], s.url);
    expect(run).toEqual({ code: 0, stdout: "web1: running\n", stderr: "" });
    expect(gets(s, "/v1/vms/web1")).toBe(3);
  });

  it("prints JSON with -o json, and waits for stopped", async () => {
    const s = await serve({ "GET /v1/vms/web1": sequence(vmIs({ state: "stopping" }), vmIs({ state: "stopped" })) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "stopped", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ vm: "web1", condition: "stopped", state: "stopped" });
  });

  it("exits 1 with the VM's last error when it goes to error while waiting for running", async () => {
    const lastError = { code: "QEMU_FAILED" as const, message: "qemu-system-x86_64 exited with status 1", hint: "see the console: iaas vm console web1" };
    const s = await serve({ "GET /v1/vms/web1": sequence(vmIs({ state: "starting", lockJobId: "j" }), vmIs({ state: "error", lastError })) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "running"], s.url);
    expect(run).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: vm web1 is in state error while waiting for running: qemu-system-x86_64 exited with status 1\nhint: see the console: iaas vm console web1\n",
    });
  });

  it("keeps waiting on a VM in error while a job works on it", async () => {
    const s = await serve({ "GET /v1/vms/web1": sequence(vmIs({ state: "error", lockJobId: "start-job" }), vmIs({ state: "running" })) });
    expect((await runIaas(["vm", "wait", "web1", "--for", "running"], s.url)).code).toBe(0);
  });

  it("exits 4 when --timeout passes first, saying what the VM is", async () => {
    const s = await serve({ "GET /v1/vms/web1": vmIs({ state: "stopped" }) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "running", "--timeout", "0.1"], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toBe("error: vm web1: gave up waiting for running after 100ms (it is stopped)\nhint: see it with: iaas vm show web1; wait longer with --timeout SECONDS\n");
    expect(gets(s, "/v1/vms/web1")).toBeGreaterThan(1);
  });

  it("takes --timeout before the subcommand too", async () => {
    const s = await serve({ "GET /v1/vms/web1": vmIs({ state: "stopped" }) });
    expect((await runIaas(["--timeout", "0.05", "vm", "wait", "web1", "--for", "running"], s.url)).code).toBe(4);
  });

  it("exits 3 when the VM does not exist", async () => {
    const s = await serve({});
    expect((await runIaas(["vm", "wait", "nope", "--for", "running"], s.url)).code).toBe(3);
  });
});

describe("vm wait --for ip", () => {
  it("waits until the first NIC has a DHCP lease and prints its address", async () => {
    const leased = makeNic({ lease: { ip: "10.100.0.2", at: "2025-01-01T00:00:30.000Z" } });
    const s = await serve({ "GET /v1/vms/web1": sequence(vmIs({ state: "running", nics: [makeNic()] }), vmIs({ state: "running", nics: [leased] })) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "ip"], s.url);
    expect(run).toEqual({ code: 0, stdout: "web1: ip 10.100.0.2\n", stderr: "" });
    const asJson = await runIaas(["vm", "wait", "web1", "--for", "ip", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual({ vm: "web1", condition: "ip", nic: 0, ip: "10.100.0.2" });
  });

  it("waits for another NIC with --nic", async () => {
    const nics = [makeNic(), makeNic({ index: 1, ip: "10.20.0.10", lease: { ip: "10.20.0.10", at: "2025-01-01T00:00:30.000Z" } })];
    const s = await serve({ "GET /v1/vms/web1": vmIs({ state: "running", nics }) });
    expect((await runIaas(["vm", "wait", "web1", "--for", "ip", "--nic", "1"], s.url)).stdout).toBe("web1: ip 10.20.0.10\n");
  });

  it("exits 2 for a VM without a NIC (or without that NIC)", async () => {
    const s = await serve({ "GET /v1/vms/bare": vmIs({ name: "bare", state: "running" }), "GET /v1/vms/web1": vmIs({ state: "running", nics: [makeNic()] }) });
    const run = await runIaas(["vm", "wait", "bare", "--for", "ip"], s.url);
    expect(run).toEqual({ code: 2, stdout: "", stderr: "error: vm bare has no NIC\nhint: add one with: iaas vm nic add bare --network default\n" });
    expect(gets(s, "/v1/vms/bare")).toBe(1);
    const other = await runIaas(["vm", "wait", "web1", "--for", "ip", "--nic", "3"], s.url);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("error: vm web1 has no NIC 3 (it has 0)");
  });

  it("exits 2 at once for a user-mode NIC, which never reports a lease, pointing at the console instead", async () => {
    const s = await serve({ "GET /v1/vms/web1": vmIs({ state: "running", userModeNetworking: true, nics: [makeNic()] }) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "ip", "--timeout", "30"], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/user-mode NIC has no DHCP server on the host/);
    expect(run.stderr).toMatch(/--for 'console=/);
    expect(gets(s, "/v1/vms/web1")).toBe(1);
  });

  it("exits 4 when no lease comes in time", async () => {
    const s = await serve({ "GET /v1/vms/web1": vmIs({ state: "running", nics: [makeNic()] }) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "ip", "--timeout", "0.05"], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain("error: vm web1: gave up waiting for a DHCP lease on nic 0 after 50ms (it is running)\n");
  });
});

describe("vm wait --for console=REGEX", () => {
  it("polls the console until the pattern matches", async () => {
    const s = await serve({ "GET /v1/vms/web1/console": sequence(text("Booting...\n"), text("Booting...\nDebian GNU/Linux 12 web1 ttyS0\n\nweb1 login: ")) });
    const run = await runIaas(["vm", "wait", "web1", "--for", "console=^web1 login:"], s.url);
    expect(run).toEqual({ code: 0, stdout: 'web1: console matched "web1 login:"\n', stderr: "" });
    expect(gets(s, "/v1/vms/web1/console")).toBe(2);
    const asJson = await runIaas(["vm", "wait", "web1", "--for", "console=ttyS\\d", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual({ vm: "web1", condition: "console", pattern: "ttyS\\d", match: "ttyS0" });
  });

  it("exits 2 for an invalid regular expression, before calling the API", async () => {
    const s = await serve({});
    const run = await runIaas(["vm", "wait", "web1", "--for", "console=login:(("], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("invalid regular expression 'login:(('");
    expect(s.requests).toHaveLength(0);
  });

  it("exits 4 when the console never matches", async () => {
    const s = await serve({ "GET /v1/vms/web1/console": text("kernel panic\n") });
    const run = await runIaas(["vm", "wait", "web1", "--for", "console=login:", "--timeout", "0.05"], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain("error: vm web1: gave up waiting for the console to match /login:/ after 50ms\n");
  });
});

describe("vm wait --for port=N", () => {
  const probing = makeJob({ type: "vm.probe", state: "running", startedAt: "2025-01-01T00:00:01.000Z", payload: { vmId: VM_ID, port: 22, nic: 0, timeoutSeconds: 120 } });
  const finished = (overrides: Partial<Job>): Job => ({ ...probing, finishedAt: "2025-01-01T00:00:03.000Z", ...overrides });
  const probeApi = (final: Job): Promise<ScriptedServer> =>
    serve({ "POST /v1/vms/web1/probe": json({ job: probing, vm: makeVm({ state: "running" }) }, 202) }, { running: probing, events: [stateEvent(1, "running"), stateEvent(2, final.state)], final });

  it("submits a probe job with the timeout and follows it to success", async () => {
    const s = await probeApi(finished({ state: "succeeded", result: { vmId: VM_ID, ip: "10.100.0.2", port: 22, elapsedMs: 1500 } }));
    const run = await runIaas(["vm", "wait", "web1", "--for", "port=22"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("web1: port 22 answers at 10.100.0.2 (after 1.5s)\n");
    expect(run.stderr).toContain("[job 1a2b3c4d] running (vm.probe vm web1)");
    expect(bodyOf(s.requests[0])).toEqual({ port: 22, nic: 0, timeoutSeconds: 120 });
    const asJson = await runIaas(["vm", "wait", "web1", "--for", "port=22", "--timeout", "30.5", "--nic", "1", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual({ vm: "web1", condition: "port", port: 22, nic: 1, ip: "10.100.0.2", elapsedMs: 1500, jobId: probing.id });
    expect(bodyOf(s.requests.filter((r) => r.method === "POST")[1])).toEqual({ port: 22, nic: 1, timeoutSeconds: 31 });
  });

  it("exits 4 when the probe job fails with WAIT_TIMEOUT", async () => {
    const s = await probeApi(finished({ state: "failed", error: { code: "WAIT_TIMEOUT", message: "port 22 of vm web1 (10.100.0.2) did not answer within 5s", hint: null } }));
    const run = await runIaas(["vm", "wait", "web1", "--for", "port=22", "--timeout", "5"], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain("error: port 22 of vm web1 (10.100.0.2) did not answer within 5s\nhint: is anything listening on port 22 in the guest? see the console with: iaas vm console web1\n");
  });

  it("exits 1 when the probe job fails otherwise", async () => {
    const s = await probeApi(finished({ state: "failed", error: { code: "NETWORK_FAILED", message: "vm web1 has no route from host hv1", hint: null } }));
    const run = await runIaas(["vm", "wait", "web1", "--for", "port=22"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: vm web1 has no route from host hv1\n");
  });

  it("reports a probe job's result on `job wait` too", async () => {
    const s = await probeApi(finished({ state: "succeeded", result: { vmId: VM_ID, ip: "10.100.0.2", port: 22, elapsedMs: 250 } }));
    const run = await runIaas(["job", "wait", probing.id], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("web1: port 22 answers at 10.100.0.2 (after 250ms)\n");
  });

  it("exits 3 when the API refuses the probe (e.g. the VM is stopped)", async () => {
    const s = await serve({ "POST /v1/vms/web1/probe": problem(409, "INVALID_STATE", "vm web1 is stopped") });
    expect((await runIaas(["vm", "wait", "web1", "--for", "port=22"], s.url)).code).toBe(3);
  });

  it("exits 2 for a bad port", async () => {
    const s = await serve({});
    expect((await runIaas(["vm", "wait", "web1", "--for", "port=70000"], s.url)).code).toBe(2);
    expect((await runIaas(["vm", "wait", "web1", "--for", "port=ssh"], s.url)).code).toBe(2);
    expect((await runIaas(["vm", "wait", "web1"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });
});
