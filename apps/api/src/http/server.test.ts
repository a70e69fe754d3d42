import net from "node:net";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { createApiServer, DEFAULT_SERVER_OPTIONS, listen, serverOptionsFromEnv, type ApiServer, type ServerOptions } from "./server.js";

/** Writes `head` (and whatever `then` sends) on a raw socket; resolves to what came back when the server closed or answered. */
function rawExchange(port: number, head: string, opts: { body?: string; waitForClose?: boolean } = {}): Promise<{ answer: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head + (opts.body ?? "")));
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
      if (!opts.waitForClose && answer.includes("\r\n\r\n")) {
        socket.destroy();
        resolve({ answer, closedAfterMs: Date.now() - started });
      }
    });
    socket.on("close", () => resolve({ answer, closedAfterMs: Date.now() - started }));
    socket.on("error", reject);
  });
}

describe("createApiServer", () => {
  let server: ApiServer | undefined;

  afterEach(async () => {
    if (!server) return;
    server.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = undefined;
  });

  async function serve(options: Partial<ServerOptions>, app = express().all("/{*any}", (_req, res) => void res.json({ ok: true }))): Promise<number> {
    server = createApiServer(app, { ...DEFAULT_SERVER_OPTIONS, ...options });
    return listen(server, 0, "127.0.0.1");
  }

  it("answers 431 to a request head over maxHeaderBytes (below Node's own 16 KiB default)", async () => {
    const port = await serve({ maxHeaderBytes: 8 * 1024 });
    const ok = await fetch(`http://127.0.0.1:${port}/x`, { headers: { "x-pad": "a".repeat(4 * 1024) } });
    expect(ok.status).toBe(200);
    const { answer } = await rawExchange(port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(12 * 1024)}\r\n\r\n`, { waitForClose: true });
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
  });

  it("sets the head and request timeouts", async () => {
    await serve({ headersTimeoutMs: 7_000, requestTimeoutMs: 0 });
    expect(server?.headersTimeout).toBe(7_000);
    expect(server?.requestTimeout).toBe(0);
    server?.close();
    server = createApiServer(express(), { ...DEFAULT_SERVER_OPTIONS, headersTimeoutMs: 5_000, requestTimeoutMs: 60_000 });
    expect(server.requestTimeout).toBe(60_000);
  });

  it("cuts a request body that stalls longer than bodyIdleTimeoutMs, but not a slow answer", async () => {
    const app = express();
    app.post("/upload", (req, res) => {
      req.resume();
      req.on("end", () => res.json({ ok: true }));
    });
    app.post("/upload-then-think", (req, res) => {
      req.resume();
      req.on("end", () => setTimeout(() => res.json({ thought: true }), 900));
    });
    app.get("/slow", (_req, res) => {
      setTimeout(() => res.json({ slow: true }), 900);
    });
    const port = await serve({ bodyIdleTimeoutMs: 300 }, app);
    const stalled = await rawExchange(port, "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n", { body: "x".repeat(10), waitForClose: true });
    expect(stalled.answer).toBe("");
    expect(stalled.closedAfterMs).toBeGreaterThanOrEqual(250);
    expect(stalled.closedAfterMs).toBeLessThan(3_000);
    // A whole body, then an answer slower than the idle timeout: not cut.
    const whole = await fetch(`http://127.0.0.1:${port}/upload`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "y".repeat(100) });
    expect(whole.status).toBe(200);
    const slow = await fetch(`http://127.0.0.1:${port}/slow`);
    expect(await slow.json()).toEqual({ slow: true });
    // The body is whole: the server may take longer than the idle timeout to answer.
    const thought = await fetch(`http://127.0.0.1:${port}/upload-then-think`, { method: "POST", body: "w".repeat(100) });
    expect(await thought.json()).toEqual({ thought: true });
    // The same keep-alive connection serves a slow answer after a body was read.
    const again = await fetch(`http://127.0.0.1:${port}/upload`, { method: "POST", body: "z".repeat(100) });
    expect(again.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/slow`)).status).toBe(200);
  });

  it("reads the TLS files named by the environment, naming the one it cannot read", async () => {
    const base = { IAAS_MAX_HEADER_BYTES: 16384, IAAS_HEADERS_TIMEOUT_SECONDS: 30, IAAS_REQUEST_TIMEOUT_SECONDS: 0, IAAS_BODY_IDLE_TIMEOUT_SECONDS: 120 };
    expect(await serverOptionsFromEnv(base)).toEqual({ tls: undefined, maxHeaderBytes: 16384, headersTimeoutMs: 30_000, requestTimeoutMs: 0, bodyIdleTimeoutMs: 120_000 });
    await expect(serverOptionsFromEnv({ ...base, IAAS_TLS_CERT: "/nonexistent/cert.pem", IAAS_TLS_KEY: "/nonexistent/key.pem" })).rejects.toThrow(/IAAS_TLS_CERT \/nonexistent\/cert\.pem/);
  });
});
