import { afterEach, describe, expect, it } from "vitest";
import { JOB_ID, makeEvent, makeImage, makeJob, makeVm, stateEvent } from "../testing/fixtures.js";
import { serveJob } from "../testing/jobApi.js";
import { json, problem, routeTable } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

// What guests and other users wrote reaches the terminal of whoever runs `iaas`: its control
// sequences must arrive neutralised (see output/sanitize.ts), in tables, details, errors, job
// events and the serial console alike. `-o json` stays exact (JSON escapes them).

const ESC = "\x1b";
const TITLE = `${ESC}]0;pwned\x07`;
const CLEAR = `${ESC}[2J`;
/** Any C0 control but newline, or DEL, or C1: none may reach the terminal. */
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const hostile = makeImage({ name: "deb12", labels: { os: `debian${TITLE}` }, description: `${CLEAR}trust me\nstate: fine` });

describe("text from others is printed terminal-safe", () => {
  it("image show: a label and a description with escape sequences print them visibly, on their own line", async () => {
    server = await startScriptedServer(routeTable({ "GET /v1/images/deb12": json(hostile) }));
    const run = await runIaas(["image", "show", "deb12"], server.url);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(CONTROL);
    expect(run.stdout).toContain("labels:           os=debian^[]0;pwned^G\n");
    // The description stays one field: its newline cannot forge a line of its own.
    expect(run.stdout).toContain("description:      ^[[2Jtrust me^Jstate: fine\n");
    // JSON output is the API's object, exactly.
    const asJson = await runIaas(["image", "show", "deb12", "-o", "json"], server.url);
    expect(JSON.parse(asJson.stdout)).toEqual(hostile);
  });

  it("image list: a name with control characters cannot break the table", async () => {
    server = await startScriptedServer(routeTable({ "GET /v1/images": json({ items: [makeImage({ name: `evil${CLEAR}` }), makeImage({ name: "ok" })] }) }));
    const run = await runIaas(["image", "list"], server.url);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(CONTROL);
    const [header, evil, ok] = run.stdout.split("\n");
    expect(evil).toMatch(/^evil\^\[\[2J {2}ready/);
    // Columns stay aligned: measured on what is printed.
    expect(ok?.indexOf("ready")).toBe(evil?.indexOf("ready"));
    expect(header?.indexOf("STATE")).toBe(evil?.indexOf("ready"));
  });

  it("vm console: the guest's escape sequences are dropped, its text and line ends kept, even split across chunks", async () => {
    server = await startScriptedServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      // Sequences and a UTF-8 character cut across writes, as a serial stream arrives.
      const e = Buffer.from("é");
      const parts = [`Booting ${ESC}[0;3`, `2mOK${ESC}[0m\r`, `\n${TITLE.slice(0, 4)}`, `${TITLE.slice(4)}${CLEAR}login: `, e.subarray(0, 1), Buffer.concat([e.subarray(1), Buffer.from("\x07\b\r\n")])];
      let i = 0;
      const next = () => {
        if (i === parts.length) return void res.end();
        res.write(parts[i++]);
        setTimeout(next, 5);
      };
      next();
    });
    const run = await runIaas(["vm", "console", "web1"], server.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("Booting OK\r\nlogin: é\r\n");
    expect(run.stdout).not.toContain("pwned");
  });

  it("an API error message and hint with escape sequences print them visibly", async () => {
    server = await startScriptedServer(routeTable({ "GET /v1/vms/web1": problem(409, "INVALID_STATE", `vm ${TITLE}web1 is busy`, `wait ${CLEAR}`) }));
    const run = await runIaas(["vm", "show", "web1"], server.url);
    expect(run.code).not.toBe(0);
    expect(run.stderr).not.toMatch(CONTROL);
    expect(run.stderr).toContain("error: vm ^[]0;pwned^Gweb1 is busy\n");
    expect(run.stderr).toContain("hint: wait ^[[2J\n");
  });

  it("job logs and a followed job: event messages with escape sequences print them visibly", async () => {
    const running = makeJob({ state: "running" });
    const failed = makeJob({ state: "failed", finishedAt: "2025-01-01T00:00:09.000Z", error: { code: "QEMU_FAILED", message: `QEMU said ${CLEAR}`, hint: null } });
    const events = [stateEvent(1, "running"), makeEvent(2, { message: `guest wrote ${TITLE}` }), stateEvent(3, "failed", `done${CLEAR}`)];
    server = await startScriptedServer((req, res) => {
      if (!serveJob({ running, events, final: failed }, req, res)) res.writeHead(404).end();
    });
    const logs = await runIaas(["job", "logs", JOB_ID], server.url);
    expect(logs.stdout).not.toMatch(CONTROL);
    expect(logs.stdout).toContain("log       guest wrote ^[]0;pwned^G\n");
    expect(logs.stdout).toContain("failed: done^[[2J");
    const followed = await runIaas(["job", "wait", JOB_ID], server.url);
    expect(followed.stderr).not.toMatch(CONTROL);
    expect(followed.stderr).toContain("QEMU said ^[[2J");
  });

  it("vm show keeps the VM's last error on its line", async () => {
    const vm = makeVm({ state: "error", lastError: { code: "QEMU_FAILED", message: `qemu: ${TITLE}\nstate: running`, hint: null } });
    server = await startScriptedServer(routeTable({ "GET /v1/vms/web1": json(vm), "GET /v1/hosts": json({ items: [] }) }));
    const run = await runIaas(["vm", "show", "web1"], server.url);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(CONTROL);
    expect(run.stdout).toContain("last error:  qemu: ^[]0;pwned^G^Jstate: running (QEMU_FAILED)\n");
  });
});
