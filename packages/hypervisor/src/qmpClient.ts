import { EventEmitter } from "node:events";
import { createConnection, type Socket } from "node:net";
import { IaasError } from "@iaas/contracts";

/** An asynchronous QMP event, e.g. `{ event: "SHUTDOWN", data: { guest: false, reason: "host-qmp-quit" } }`. */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** `query-status` reply. */
export interface QmpStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

export interface QmpConnectOptions {
  /** Limit for connecting, the greeting and capabilities negotiation. Default 5000 ms. */
  timeoutMs?: number;
  /** Default limit for each command. Default 30000 ms. */
  commandTimeoutMs?: number;
}

interface QmpClientEvents {
  event: [QmpEvent];
  close: [Error | null];
}

/** A command QEMU answered with an error; `message` is QMP's `error.desc`. */
export class QmpError extends IaasError {
  readonly command: string;
  readonly errorClass: string;

  constructor(command: string, errorClass: string, desc: string) {
    super("QEMU_FAILED", desc, { retryable: false, details: { command, errorClass } });
    this.name = "QmpError";
    this.command = command;
    this.errorClass = errorClass;
  }
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function qmpConnectionError(message: string, path: string, cause?: unknown): IaasError {
  return new IaasError("QEMU_FAILED", message, {
    retryable: true,
    hint: `check that QEMU is running and listening on ${path}`,
    details: { qmpSocket: path },
    cause,
  });
}

/**
 * A QMP client over a unix socket: newline-delimited JSON, replies matched by `id`,
 * asynchronous events emitted as 'event', 'close' when the connection ends.
 */
export class QmpClient extends EventEmitter<QmpClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffer = "";
  private closed = false;
  private greetingWaiter: ((greeting: Record<string, unknown>) => void) | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
    private readonly commandTimeoutMs: number,
  ) {
    super();
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", (err) => this.shutdown(qmpConnectionError(`QMP connection to ${path} failed: ${err.message}`, path, err)));
    socket.on("close", () => this.shutdown(null));
  }

  /** Connects, reads QEMU's greeting and negotiates capabilities. */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = createConnection({ path });
    const client = new QmpClient(socket, path, opts.commandTimeoutMs ?? 30_000);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.handshake(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(qmpConnectionError(`QMP handshake on ${path} timed out after ${timeoutMs} ms`, path)), timeoutMs);
        }),
      ]);
      return client;
    } catch (err) {
      client.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onClose = (err: Error | null): void =>
        reject(err ?? qmpConnectionError(`QMP connection to ${this.path} closed before the greeting`, this.path));
      this.once("close", onClose);
      this.greetingWaiter = (greeting) => {
        this.off("close", onClose);
        if (!isRecord(greeting.QMP)) {
          reject(qmpConnectionError(`${this.path} did not greet with QMP`, this.path));
        } else {
          resolve();
        }
      };
    });
    await this.execute("qmp_capabilities");
  }

  /** Runs a command and returns its `return` value; rejects with QmpError carrying `error.desc`. */
  execute(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(qmpConnectionError(`QMP connection to ${this.path} is closed`, this.path));
    const id = this.nextId++;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(qmpConnectionError(`QMP command '${command}' got no reply within ${timeoutMs} ms`, this.path));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** `query-status`: the VM run state (`running`, `paused`, `shutdown`, ...). */
  async queryStatus(): Promise<QmpStatus> {
    const r = await this.execute("query-status");
    if (!isRecord(r) || typeof r.status !== "string" || typeof r.running !== "boolean") {
      throw new IaasError("QEMU_FAILED", `unexpected query-status reply: ${JSON.stringify(r)}`);
    }
    const status: QmpStatus = { status: r.status, running: r.running };
    if (typeof r.singlestep === "boolean") status.singlestep = r.singlestep;
    return status;
  }

  /**
   * Resolves with the next event named `name` (and matching `filter`), or rejects after
   * `timeoutMs` or when the connection closes first.
   */
  waitForEvent(name: string, timeoutMs: number, filter?: (e: QmpEvent) => boolean): Promise<QmpEvent> {
    return new Promise<QmpEvent>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      const onEvent = (e: QmpEvent): void => {
        if (e.event !== name || (filter !== undefined && !filter(e))) return;
        done();
        resolve(e);
      };
      const onClose = (): void => {
        done();
        reject(qmpConnectionError(`QMP connection to ${this.path} closed while waiting for ${name}`, this.path));
      };
      const timer = setTimeout(() => {
        done();
        reject(qmpConnectionError(`no ${name} event within ${timeoutMs} ms`, this.path));
      }, timeoutMs);
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the connection; pending commands reject. */
  close(): void {
    this.socket.destroy();
    this.shutdown(null);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== "") this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch (err) {
      this.socket.destroy();
      this.shutdown(qmpConnectionError(`QMP sent something that is not JSON: ${line.slice(0, 200)}`, this.path, err));
      return;
    }
    if (!isRecord(msg)) return;
    if (this.greetingWaiter !== null && "QMP" in msg) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = null;
      waiter(msg);
      return;
    }
    if (typeof msg.event === "string") {
      const ts = isRecord(msg.timestamp) ? msg.timestamp : {};
      this.emit("event", {
        event: msg.event,
        data: isRecord(msg.data) ? msg.data : {},
        timestamp: {
          seconds: typeof ts.seconds === "number" ? ts.seconds : 0,
          microseconds: typeof ts.microseconds === "number" ? ts.microseconds : 0,
        },
      });
      return;
    }
    if (typeof msg.id !== "number") return;
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if ("return" in msg) {
      p.resolve(msg.return);
    } else if (isRecord(msg.error)) {
      const cls = typeof msg.error.class === "string" ? msg.error.class : "GenericError";
      const desc = typeof msg.error.desc === "string" ? msg.error.desc : JSON.stringify(msg.error);
      p.reject(new QmpError(p.command, cls, desc));
    } else {
      p.reject(new IaasError("QEMU_FAILED", `QMP reply to '${p.command}' has neither return nor error`));
    }
  }

  private shutdown(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err ?? qmpConnectionError(`QMP connection to ${this.path} closed before '${p.command}' was answered`, this.path));
    }
    this.pending.clear();
    this.emit("close", err);
  }
}
