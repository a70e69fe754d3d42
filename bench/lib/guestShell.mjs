// A root shell in the busybox test guest (scripts/guest/build-linux.sh), reached through QEMU's
// unix socket for its second UART (<data dir>/vms/<vmId>/ttyS1.sock). The .mjs counterpart of
// tests/e2e/guestShell.ts, reduced to what the benches need: connect, run a command, read its
// output and exit code between two marker lines.
//
// The shell is interactive (ash with line editing): it echoes what is typed, asks where the cursor
// is (ESC[6n) and uses CRLF. A command travels base64-encoded (quotes survive the line editor) and
// is framed by markers whose text never appears in the echo (printf joins their halves).
import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { StringDecoder } from "node:string_decoder";

const BEGIN = "IAAS-GS-B:";
const END = "IAAS-GS-E:";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function openSocket(socketPath) {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

export class GuestShell {
  #socket;
  #buffer = "";
  #closed;
  #wake;
  #queue = Promise.resolve();

  constructor(socket) {
    this.#socket = socket;
    const decoder = new StringDecoder("utf8");
    socket.on("data", (chunk) => {
      const text = decoder.write(chunk);
      if (text.includes("\x1b[6n")) socket.write("\x1b[1;1R"); // answer the cursor query as a terminal would
      this.#buffer += text.replace(/\r/g, "");
      this.#wake?.();
    });
    const closed = (err) => {
      this.#closed ??= err;
      this.#wake?.();
    };
    socket.on("error", closed);
    socket.on("close", () => closed(new Error("the guest shell's socket closed")));
  }

  /** Connects, retrying until the socket exists and the shell answers (the guest may still boot). */
  static async connect(socketPath, { timeoutMs = 120_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      let shell;
      try {
        shell = new GuestShell(await openSocket(socketPath));
        // Each probe has its own marker and waits longer than the one before; no Ctrl-C in between
        // (a shell still starting dies of it and drops what is typed meanwhile).
        for (let probe = 0; !shell.#closed && Date.now() < deadline; probe++) {
          try {
            const r = await shell.#enqueue(() => shell.#frame("echo ready", Math.min(5_000 * 2 ** Math.min(probe, 3), deadline - Date.now()), false));
            if (r.code === 0) return shell;
          } catch (err) {
            last = err;
          }
        }
        last = shell.#closed ?? last;
      } catch (err) {
        last = err;
      }
      shell?.close();
      if (Date.now() >= deadline) throw new Error(`no answer from the guest shell on ${socketPath}: ${last?.message ?? last}`);
      await sleep(200);
    }
  }

  /** Runs a (short) shell script with stdin from /dev/null: { output, code }. One at a time. */
  run(command, { timeoutMs = 60_000 } = {}) {
    const encoded = Buffer.from(command).toString("base64");
    // busybox's line editor keeps at most 1024 characters per line: the benches' scripts are short.
    if (encoded.length > 900) throw new Error("GuestShell.run: command too long for one line");
    return this.#enqueue(() => this.#frame(`eval "$(echo ${encoded} | base64 -d)" </dev/null`, timeoutMs, true));
  }

  close() {
    this.#closed ??= new Error("GuestShell closed");
    this.#socket.destroy();
  }

  #enqueue(fn) {
    const result = this.#queue.then(fn);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  // Types one line printing BEGIN+token, running `line`, then END+token and the exit code.
  async #frame(line, timeoutMs, interrupt) {
    const deadline = Date.now() + timeoutMs;
    const token = randomBytes(6).toString("hex");
    const begin = `${BEGIN}${token}\n`;
    const end = new RegExp(`${END}${token} (\\d+)\n`);
    this.#socket.write(`printf '%s%s\\n' ${BEGIN} ${token}; ${line}; printf '%s%s %s\\n' ${END} ${token} $?\n`);
    for (;;) {
      const start = this.#buffer.indexOf(begin);
      if (start >= 0) {
        const body = this.#buffer.slice(start + begin.length);
        const m = end.exec(body);
        if (m) {
          this.#buffer = body.slice(m.index + m[0].length);
          return { output: body.slice(0, m.index).replace(/\n$/, ""), code: Number(m[1]) };
        }
      }
      if (this.#closed) throw new Error(`${this.#closed.message}; output so far: ${JSON.stringify(this.#buffer.slice(-300))}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        if (interrupt) this.#socket.write("\x03");
        throw new Error(`GuestShell: no end marker within ${timeoutMs} ms; output so far: ${JSON.stringify(this.#buffer.slice(-300))}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }
}
