import { afterEach, describe, expect, it } from "vitest";
import { Job, type JobEvent } from "@iaas/contracts";
import { runCli } from "./program.js";
import { FakeWriter } from "./testing/FakeWriter.js";
import { HOST_ID, IMAGE_ID, JOB_ID, makeHost, makeJob, makeVm, progressEvent, stateEvent } from "./testing/fixtures.js";
import { serveJob, type JobScript } from "./testing/jobApi.js";
import { refusedUrl, sendJson, sendProblem, startScriptedServer, type ScriptedHandler, type ScriptedServer } from "./testing/scriptedServer.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(handler: ScriptedHandler): Promise<ScriptedServer> {
  server = await startScriptedServer(handler);
  return server;
}

async function iaas(argv: string[], url: string, env: Record<string, string> = {}, files: Record<string, string> = {}): Promise<Run> {
  const stdout = new FakeWriter();
  const stderr = new FakeWriter();
  const code = await runCli(argv, {
    env: { IAAS_URL: url, ...env },
    stdout,
    stderr,
    homedir: "/nonexistent-home",
    readFile: (file) => files[file] ?? null,
    retryDelaysMs: [5],
    reconnectDelaysMs: [5],
    now: () => new Date("2025-01-01T00:01:00.000Z"),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const queued = makeJob();
const running = makeJob({ state: "running", startedAt: "2025-01-01T00:00:01.000Z" });
const succeeded = makeJob({ state: "succeeded", startedAt: running.startedAt, finishedAt: "2025-01-01T00:00:04.000Z" });
const failed = makeJob({
  state: "failed",
  startedAt: running.startedAt,
  finishedAt: "2025-01-01T00:00:03.000Z",
  error: { code: "QEMU_FAILED", message: "qemu-system-x86_64 exited with status 1: could not open disk", hint: "check the image with `iaas image show deb12`" },
});
const progress: JobEvent[] = [stateEvent(1, "queued"), stateEvent(2, "running"), progressEvent(3, { phase: "create-disk", percent: 40 })];

/** An API that accepts `vm create` and plays `script` for the job it makes. */
function vmApi(script: JobScript): ScriptedHandler {
  return (req, res) => {
    if (serveJob(script, req, res)) return;
    if (req.method === "POST" && req.path === "/v1/vms") return sendJson(res, 202, { job: queued, vm: makeVm({ state: "creating" }) });
    if (req.method === "GET" && req.path === "/v1/vms/5e6f7a8b-0000-4000-8000-000000000002") return sendJson(res, 200, makeVm());
    if (req.method === "GET" && req.path === "/v1/hosts") return sendJson(res, 200, { items: [makeHost()] });
    sendProblem(res, 404, "NOT_FOUND", `no route ${req.method} ${req.path}`, null);
  };
}

describe("iaas --wait", () => {
  it("costs one request plus the event stream: the end event carries the final job, the VM names its host", async () => {
    const s = await serve((req, res) => {
      if (serveJob({ running, events: [...progress, stateEvent(4, "succeeded")], final: succeeded }, req, res)) return;
      if (req.method === "POST" && req.path === "/v1/vms") return sendJson(res, 202, { job: queued, vm: makeVm({ state: "creating" }) });
      if (req.method === "GET" && req.path === "/v1/vms/5e6f7a8b-0000-4000-8000-000000000002") return sendJson(res, 200, makeVm({ hostName: "hv1" }));
      sendProblem(res, 404, "NOT_FOUND", `no route ${req.method} ${req.path}`, null);
    });
    const run = await iaas(["vm", "create", "web1", "--image", "deb12", "--start", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`host:        hv1 (${HOST_ID})`);
    expect(s.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /v1/vms",
      `GET /v1/jobs/${JOB_ID}/events`,
      "GET /v1/vms/5e6f7a8b-0000-4000-8000-000000000002",
    ]);
  });

  it("follows a job to success, prints progress lines on stderr and the resulting VM on stdout", async () => {
    const s = await serve(vmApi({ running, events: [...progress, stateEvent(4, "succeeded")], final: succeeded }));
    const run = await iaas(["vm", "create", "web1", "--image", "deb12", "--cpus", "2", "--memory", "1G", "--start", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stderr.split("\n")).toEqual([
      "[job 1a2b3c4d] queued (vm.create vm web1)",
      "[job 1a2b3c4d] running",
      "[job 1a2b3c4d] running: create-disk 40%",
      "[job 1a2b3c4d] succeeded in 3.0s",
      "",
    ]);
    expect(run.stdout).toMatch(/^name:\s+web1\nid:\s+5e6f7a8b-/);
    expect(run.stdout).toContain(`host:        hv1 (${HOST_ID})`);
    const post = s.requests.find((r) => r.method === "POST");
    expect(JSON.parse(post?.body.toString() ?? "")).toEqual({ name: "web1", image: "deb12", cpus: 2, memory: "1G", start: true, dryRun: false });
    expect(post?.headers["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("exits 1 with the job's error and hint when the job fails", async () => {
    const s = await serve(vmApi({ running, events: progress, final: failed }));
    const run = await iaas(["vm", "create", "web1", "--image", "deb12", "--wait"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("[job 1a2b3c4d] failed: qemu-system-x86_64 exited with status 1: could not open disk\n");
    expect(run.stderr.endsWith("error: qemu-system-x86_64 exited with status 1: could not open disk\nhint: check the image with `iaas image show deb12`\n")).toBe(true);
    expect(run.stdout).toBe("");
  });

  it("exits 4 when --timeout passes first, saying how to re-attach", async () => {
    const s = await serve(vmApi({ running, events: progress, final: null }));
    const run = await iaas(["--timeout", "0.3", "job", "wait", JOB_ID], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain(`error: job ${JOB_ID} is still running; re-attach with: iaas job wait ${JOB_ID}\n`);
    expect(run.stderr).toContain("hint: it was running after --timeout 0.3s");
  });

  it("prints the final job as JSON with -o json", async () => {
    const s = await serve(vmApi({ running, events: progress, final: succeeded }));
    const run = await iaas(["job", "wait", JOB_ID, "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(Job.parse(JSON.parse(run.stdout))).toEqual(succeeded);
  });

  it("without --wait prints the job id and how to follow it", async () => {
    const s = await serve(vmApi({ running, events: progress, final: null }));
    const run = await iaas(["vm", "create", "web1", "--image", "deb12"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`job ${JOB_ID} queued: create VM (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`);
  });

  it("accepts a unique prefix of a job id", async () => {
    const s = await serve((req, res) => {
      if (req.path === "/v1/jobs" && req.method === "GET") return sendJson(res, 200, { items: [succeeded, makeJob({ id: "ffff0000-0000-4000-8000-000000000009" })] });
      if (!serveJob({ running, events: [], final: succeeded }, req, res)) sendProblem(res, 404, "NOT_FOUND", "no", null);
    });
    const run = await iaas(["job", "show", "1a2b3c4d"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`id:       ${JOB_ID}\n`);
    expect(s.requests[0]?.url).toBe("/v1/jobs?limit=1000");
  });
});

describe("iaas errors and exit codes", () => {
  it("prints a 404 problem's detail and hint and exits 3", async () => {
    const s = await serve((_req, res) => sendProblem(res, 404, "NOT_FOUND", "VM 'nope' not found", "list VMs with `iaas vm list`"));
    const run = await iaas(["vm", "show", "nope"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: VM 'nope' not found\nhint: list VMs with `iaas vm list`\n" });
  });

  it("lists validation errors field by field and exits 2", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(400, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "t", title: "t", status: 400, detail: "invalid request", code: "VALIDATION_FAILED", hint: null, errors: [{ path: "cpus", message: "too many" }] }));
    });
    const run = await iaas(["vm", "create", "web1", "--image", "x", "--cpus", "64"], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("error: invalid request\n  cpus: too many\n");
  });

  it("says the API cannot be reached and exits 5 when the connection is refused", async () => {
    const url = await refusedUrl();
    const run = await iaas(["vm", "list"], url);
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(new RegExp(`^error: cannot reach the IaaS API at ${url}: connect ECONNREFUSED .*; is it running\\? \\(npm run up\\)\\nhint: this is the URL from IAAS_URL`));
  });

  it("sends the token as a bearer token and exits 5 with a hint when it is refused", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(401, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "t", title: "Unauthorized", status: 401, detail: "missing or invalid token", code: "UNAUTHORIZED", hint: null }));
    });
    const run = await iaas(["host", "list"], s.url, { IAAS_TOKEN: "s3cret" });
    expect(run.code).toBe(5);
    expect(s.requests[0]?.headers.authorization).toBe("Bearer s3cret");
    expect(run.stderr).toBe(
      `error: the IaaS API at ${s.url} requires a valid token (401): missing or invalid token\nhint: the token in IAAS_TOKEN was not accepted (or its role does not allow this); check it with \`iaas whoami\`, or ask an admin for a new one (\`iaas token create\`)\n`,
    );
    expect(run.stderr).not.toContain("IAAS_API_TOKEN");
  });

  it("names the config file in the hint when its token is refused", async () => {
    const s = await serve((_req, res) => sendProblem(res, 401, "UNAUTHORIZED", "the API token is not valid", null));
    const run = await iaas(["vm", "list"], s.url, { IAAS_CONFIG: "/etc/iaas.json" }, { "/etc/iaas.json": '{"token": "t0k"}' });
    expect(run.code).toBe(5);
    expect(s.requests[0]?.headers.authorization).toBe("Bearer t0k");
    expect(run.stderr).toContain("hint: the token in /etc/iaas.json was not accepted (or its role does not allow this); check it with `iaas whoami`, or log in again (`iaas login`)\n");
  });

  it("exits 2 on usage errors and 0 on --help, which documents exit codes and variables", async () => {
    const url = await refusedUrl();
    const usage = await iaas(["vm", "create", "web1"], url);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("error: required option '--image <image>' not specified");
    expect((await iaas(["vm", "frobnicate"], url)).code).toBe(2);
    expect((await iaas(["--output", "xml", "vm", "list"], url)).code).toBe(2);
    expect((await iaas(["vm", "create", "Web_1", "--image", "x"], url)).code).toBe(2);
    const help = await iaas(["--help"], url);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Exit codes:");
    expect(help.stdout).toContain("IAAS_TOKEN");
    expect(help.stdout).toContain("4    --timeout passed while waiting");
  });

  it("documents projects, tokens and roles in --help: IAAS_PROJECT, a Security paragraph and 403 under exit code 5", async () => {
    const url = await refusedUrl();
    const help = (await iaas(["--help"], url)).stdout;
    expect(help).toContain("IAAS_PROJECT  project to act in");
    expect(help).toContain('{"url": "...", "token": "...", "project": "..."}');
    expect(help).toMatch(/\nSecurity:\n {2}The API wants an API token: `iaas login --url URL --token T`/);
    expect(help).toContain("Roles: viewer reads; operator also creates");
    expect(help).toMatch(/5 {4}the API is unreachable, or refused the credentials \(401: no valid token\) or the request\n {7}\(403 forbidden/);
    expect(help).toContain("project quota exceeded");
    expect(help).toContain("--project <name>");
    for (const group of ["login", "whoami", "token", "project", "audit"]) expect(help).toMatch(new RegExp(`\\n  ${group}\\b`));
    for (const [argv, example] of [
      [["token", "--help"], "iaas token create ci --role operator --project team-a --expires 90d"],
      [["project", "--help"], "iaas project set-quota team-a --vms 10 --vcpus 16 --memory 32G --disk 500G"],
      [["audit", "list", "--help"], "iaas audit list --outcome denied --since 7d"],
      [["login", "--help"], "iaas login --url http://127.0.0.1:8080 --token \"$TOKEN\" --project team-a"],
      [["host", "--help"], "iaas host drain hv2"],
      [["image", "set-public", "--help"], "iaas image set-public deb12"],
    ] as const) {
      const run = await iaas([...argv], url);
      expect(run.code, argv.join(" ")).toBe(0);
      expect(run.stdout, argv.join(" ")).toContain(example);
    }
  });

  it("lists the network commands and the networking workflow in --help", async () => {
    const url = await refusedUrl();
    const help = await iaas(["--help"], url);
    expect(help.stdout).toMatch(/network\|net\s+create and manage virtual networks/);
    expect(help.stdout).toContain("iaas vm port add web1 2222:22 --wait && iaas vm wait web1 --for port=22 && iaas vm ssh web1");
    const vm = await iaas(["vm", "--help"], url);
    for (const command of ["ip [options] <name>", "nic ", "port ", "wait [options] <name>", "ssh [options] <name> [ssh-args...]"]) expect(vm.stdout).toContain(command);
    expect((await iaas(["vm", "create", "--help"], url)).stdout).toContain("--network NET[,ip=A.B.C.D][,mac=52:54:00:xx:xx:xx]");
  });

  it("takes global options before or after the subcommand; image import's own --url is the image's source", async () => {
    const s = await serve((req, res) =>
      req.path === "/v1/images" && req.method === "POST" ? sendJson(res, 202, { job: queued, image: null }) : sendJson(res, 200, { items: [] }),
    );
    const bad = await refusedUrl();
    expect((await iaas(["--url", s.url, "-o", "json", "vm", "list"], bad)).stdout).toBe('{\n  "items": []\n}\n');
    expect((await iaas(["vm", "list", "--url", s.url, "-o", "json"], bad)).stdout).toBe('{\n  "items": []\n}\n');
    const run = await iaas(["--url", s.url, "image", "import", "deb12", "--url", "https://example.org/d.qcow2", "-o", "json"], bad);
    expect(run.code).toBe(0);
    expect(JSON.parse(s.requests.at(-1)?.body.toString() ?? "")).toEqual({ name: "deb12", source: { type: "url", url: "https://example.org/d.qcow2" } });
  });

  it("retries a POST after a dropped connection with the same Idempotency-Key", async () => {
    let posts = 0;
    const s = await serve((req, res) => {
      if (req.method === "POST" && ++posts === 1) {
        res.socket?.destroy();
        return;
      }
      sendJson(res, 202, { job: queued, vm: makeVm() });
    });
    const run = await iaas(["vm", "start", "web1", "--idempotency-key", "try-1"], s.url);
    expect(run.code).toBe(0);
    expect(s.requests.map((r) => r.headers["idempotency-key"])).toEqual(["try-1", "try-1"]);
  });

  it("names the endpoint when an answer does not match the contract", async () => {
    const s = await serve((_req, res) => sendJson(res, 200, { items: [{ name: "web1" }] }));
    const run = await iaas(["vm", "list"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: unexpected response from GET \/v1\/vms: items\.0\.id: /);
  });
});

describe("iaas commands", () => {
  it("lists VMs as an aligned table with host names and human sizes", async () => {
    const s = await serve((req, res) =>
      req.path === "/v1/hosts" ? sendJson(res, 200, { items: [makeHost()] }) : sendJson(res, 200, { items: [makeVm({ state: "running" })] }),
    );
    const run = await iaas(["vm", "list"], s.url);
    expect(run.stdout).toBe("NAME  STATE    HOST  IP  CPUS  MEMORY   DISK   IMAGE\nweb1  running  hv1   -   2     512 MiB  2 GiB  deb12\n");
  });

  it("shows the placement decision for vm create --dry-run", async () => {
    const s = await serve((req, res) => {
      if (req.path === "/v1/hosts") return sendJson(res, 200, { items: [makeHost()] });
      const plan = { dryRun: true, name: "web2", imageId: IMAGE_ID, cpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 2 * 1024 ** 3 };
      sendJson(res, 200, { ...plan, placement: { hostId: HOST_ID, candidates: [{ hostId: HOST_ID, fits: true, reasons: [], score: 0.3 }] } });
    });
    const run = await iaas(["vm", "create", "web2", "--image", "deb12", "--dry-run"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`would be placed on host hv1 (${HOST_ID})`);
    expect(run.stdout).toContain("* hv1  yes   0.30   -");
    expect(JSON.parse(s.requests.find((r) => r.method === "POST")?.body.toString() ?? "")).toMatchObject({ dryRun: true });
    expect(run.stdout).not.toContain("quota");
  });

  it("prints the project's quota verdict of vm create --dry-run when the API gives one", async () => {
    let quota: string[] = [];
    const s = await serve((req, res) => {
      if (req.path === "/v1/hosts") return sendJson(res, 200, { items: [makeHost()] });
      const plan = { dryRun: true, name: "web2", imageId: IMAGE_ID, cpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 2 * 1024 ** 3, quota };
      sendJson(res, 200, { ...plan, placement: { hostId: HOST_ID, candidates: [{ hostId: HOST_ID, fits: true, reasons: [], score: 0.3 }] } });
    });
    const fits = await iaas(["--project", "team-a", "vm", "create", "web2", "--image", "deb12", "--dry-run"], s.url);
    expect(fits.code).toBe(0);
    expect(fits.stdout).toContain("nothing was created (dry run)\nquota: fits the project's quotas\n\nHOST");
    expect(s.requests.every((r) => r.headers["x-iaas-project"] === "team-a")).toBe(true);
    quota = ["project 'team-a' would use 11 VMs, its quota is 10", "project 'team-a' would use 34 GiB memory, its quota is 32 GiB"];
    const over = await iaas(["vm", "create", "web2", "--image", "deb12", "--dry-run"], s.url);
    expect(over.code).toBe(0);
    expect(over.stdout).toContain(
      [
        "nothing was created (dry run)",
        "quota: the project's quotas would refuse it (QUOTA_EXCEEDED):",
        "  - project 'team-a' would use 11 VMs, its quota is 10",
        "  - project 'team-a' would use 34 GiB memory, its quota is 32 GiB",
        "",
        "HOST",
      ].join("\n"),
    );
    const asJson = await iaas(["vm", "create", "web2", "--image", "deb12", "--dry-run", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout).quota).toEqual(quota);
  });

  it("refuses to import a file that does not exist, before creating anything", async () => {
    const s = await serve((_req, res) => sendJson(res, 500, {}));
    const run = await iaas(["image", "import", "deb12", "--file", "/nonexistent/disk.qcow2"], s.url);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("error: image file /nonexistent/disk.qcow2 does not exist\n");
    expect(s.requests).toHaveLength(0);
  });

  it("prints a job's events with job logs", async () => {
    const s = await serve((req, res) => {
      if (!serveJob({ running, events: [...progress, stateEvent(4, "succeeded")], final: succeeded }, req, res)) res.writeHead(500).end();
    });
    const run = await iaas(["job", "logs", JOB_ID], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout.split("\n")).toEqual([
      "2025-01-01T00:00:01.000Z  state     queued",
      "2025-01-01T00:00:02.000Z  state     running",
      "2025-01-01T00:00:03.000Z  progress  create-disk 40%",
      "2025-01-01T00:00:04.000Z  state     succeeded",
      "",
    ]);
  });

  it("prints the events so far of a running job and says how to follow it", async () => {
    const s = await serve((req, res) => {
      if (!serveJob({ running, events: progress, final: null }, req, res)) res.writeHead(500).end();
    });
    const run = await iaas(["job", "logs", JOB_ID], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout.split("\n")).toHaveLength(4);
    expect(run.stderr).toBe(`job ${JOB_ID} is still running; follow it with: iaas job logs ${JOB_ID} --follow\n`);
  });

  it("prints the serial console as text", async () => {
    const s = await serve((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(req.query.get("follow") === "true" ? "followed\n" : "login: \n");
    });
    expect((await iaas(["vm", "console", "web1"], s.url)).stdout).toBe("login: \n");
    expect((await iaas(["vm", "console", "web1", "--follow"], s.url)).stdout).toBe("followed\n");
  });
});
