import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { QmpClient, QmpError, type QmpEvent } from "./qmpClient.js";

/** A hand-written QMP peer: greets, then answers each command with `reply(cmd)`. */
interface FakeQmp {
  server: Server;
  path: string;
  received: Array<Record<string, unknown>>;
  sockets: Socket[];
}

type Reply = (cmd: Record<string, unknown>, socket: Socket) => string | null;

let dir: string;
const clients: QmpClient[] = [];
const servers: Server[] = [];
const peers: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "qmpu-"));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of peers.splice(0)) p.destroy();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

async function fakeQmp(reply: Reply, greeting = '{"QMP": {"version": {}, "capabilities": []}}\n'): Promise<FakeQmp> {
  const path = join(dir, "q.sock");
  const fake: FakeQmp = { server: createServer(), path, received: [], sockets: [] };
  fake.server.on("connection", (sock) => {
    fake.sockets.push(sock);
    peers.push(sock);
    sock.setEncoding("utf8");
    if (greeting !== "") sock.write(greeting);
    let buf = "";
    sock.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        fake.received.push(cmd);
        const out = reply(cmd, sock);
        if (out !== null) sock.write(out);
      }
    });
  });
  servers.push(fake.server);
  await new Promise<void>((r) => fake.server.listen(path, () => r()));
  return fake;
}

const ok = (cmd: Record<string, unknown>, ret: unknown = {}): string => `${JSON.stringify({ return: ret, id: cmd.id })}\n`;

async function connect(path: string, timeoutMs = 2000): Promise<QmpClient> {
  const c = await QmpClient.connect(path, { timeoutMs, commandTimeoutMs: 1000 });
  clients.push(c);
  return c;
}

describe("QmpClient", () => {
  it("reads the greeting and negotiates capabilities before anything else", async () => {
    const fake = await fakeQmp((cmd) => ok(cmd));
    await connect(fake.path);
    expect(fake.received).toEqual([{ execute: "qmp_capabilities", id: 1 }]);
  });

  it("returns a command's return value and sends its arguments", async () => {
    const fake = await fakeQmp((cmd) => (cmd.execute === "query-status" ? ok(cmd, { status: "running", running: true, singlestep: false }) : ok(cmd)));
    const c = await connect(fake.path);
    expect(await c.queryStatus()).toEqual({ status: "running", running: true, singlestep: false });
    await c.execute("device_del", { id: "nic1" });
    expect(fake.received.at(-1)).toEqual({ execute: "device_del", arguments: { id: "nic1" }, id: 3 });
  });

  it("matches replies by id even when they arrive out of order and split across chunks", async () => {
    let held: Record<string, unknown> | null = null;
    const fake = await fakeQmp((cmd, sock) => {
      if (cmd.execute === "first") {
        held = cmd;
        return null;
      }
      if (cmd.execute === "second" && held !== null) {
        const both = ok(cmd, "two") + ok(held, "one");
        sock.write(both.slice(0, 7));
        setTimeout(() => sock.write(both.slice(7)), 20);
        return null;
      }
      return ok(cmd);
    });
    const c = await connect(fake.path);
    const p1 = c.execute("first");
    await new Promise((r) => setTimeout(r, 20));
    const p2 = c.execute("second");
    expect(await Promise.all([p1, p2])).toEqual(["one", "two"]);
  });

  it("rejects with the QMP error description", async () => {
    const fake = await fakeQmp((cmd) =>
      cmd.execute === "bogus" ? `${JSON.stringify({ error: { class: "CommandNotFound", desc: "The command bogus has not been found" }, id: cmd.id })}\n` : ok(cmd),
    );
    const c = await connect(fake.path);
    const err = await c.execute("bogus").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).message).toBe("The command bogus has not been found");
    expect((err as QmpError).errorClass).toBe("CommandNotFound");
    expect((err as QmpError).code).toBe("QEMU_FAILED");
  });

  it("emits events and waits for a named one", async () => {
    const fake = await fakeQmp((cmd, sock) => {
      if (cmd.execute === "system_reset") {
        sock.write(ok(cmd));
        sock.write('{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}\n');
        return null;
      }
      return ok(cmd);
    });
    const c = await connect(fake.path);
    const seen: QmpEvent[] = [];
    c.on("event", (e) => seen.push(e));
    const reset = c.waitForEvent("RESET", 1000);
    await c.execute("system_reset");
    const e = await reset;
    expect(e).toEqual({ event: "RESET", data: { guest: false, reason: "host-qmp-system-reset" }, timestamp: { seconds: 1, microseconds: 2 } });
    expect(seen.map((s) => s.event)).toEqual(["RESET"]);
  });

  it("rejects pending commands and emits close when QEMU goes away", async () => {
    const fake = await fakeQmp((cmd, sock) => {
      if (cmd.execute === "quit") {
        sock.end();
        return null;
      }
      return ok(cmd);
    });
    const c = await connect(fake.path);
    const closed = new Promise<void>((r) => c.once("close", () => r()));
    await expect(c.execute("quit")).rejects.toThrow(/closed before 'quit' was answered/);
    await closed;
    expect(c.isClosed).toBe(true);
    await expect(c.execute("query-status")).rejects.toThrow(/is closed/);
  });

  it("times out a command that gets no reply", async () => {
    const fake = await fakeQmp((cmd) => (cmd.execute === "hang" ? null : ok(cmd)));
    const c = await connect(fake.path);
    await expect(c.execute("hang", undefined, { timeoutMs: 50 })).rejects.toThrow(/no reply within 50 ms/);
  });

  it("fails to connect when nothing listens, or no greeting arrives in time", async () => {
    await expect(QmpClient.connect(join(dir, "missing.sock"), { timeoutMs: 500 })).rejects.toThrow(/QMP connection .* failed/);
    const silent = await fakeQmp(() => null, "");
    await expect(QmpClient.connect(silent.path, { timeoutMs: 100 })).rejects.toThrow(/timed out/);
  });
});
