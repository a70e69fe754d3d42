import { randomBytes } from "node:crypto";
import { createConnection, type Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";

// The busybox test guest (scripts/guest/build-linux.sh) runs a root shell on its second UART.
// QEMU exposes that UART as a unix socket:
//   -chardev socket,id=serial1,path=SOCK,server=on,wait=off -serial chardev:serial1
//
// The shell is interactive (ash with line editing): it echoes what is typed, wraps the echo at 80
// columns, prints a prompt with terminal escapes (ESC[6n) and uses CRLF. So a command is framed by
// two marker lines whose text never appears in the echo (printf joins the marker's halves), and
// only what lies between them is the command's output. The command itself travels base64-encoded,
// so quotes, newlines and long scripts survive the line editor.

export interface RunResult {
  /** stdout and stderr as the terminal showed them, CRs removed, without the final newline. */
  output: string;
  code: number;
}

const BEGIN = "IAAS-GS-B:";
const END = "IAAS-GS-E:";
/** Base64 bytes typed per line: busybox's line editor keeps at most 1024 characters. */
const CHUNK = 600;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function openSocket(socketPath: string): Promise<Socket> {
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
  private buffer = "";
  private readonly decoder = new StringDecoder("utf8");
  private closed: Error | undefined;
  private wake: (() => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      const text = this.decoder.write(chunk);
      // The shell's line editor asks where the cursor is (ESC [ 6 n): answer as a terminal would,
      // so it never waits for a reply that no one sends.
      if (text.includes("\x1b[6n")) socket.write("\x1b[1;1R");
      this.buffer += text.replace(/\r/g, "");
      this.wake?.();
    });
    socket.on("error", (err) => this.markClosed(err));
    socket.on("close", () => this.markClosed(new Error("the guest shell's socket closed")));
  }

  /**
   * Connects to the guest's ttyS1 socket, retrying until the socket exists (QEMU starting) and the
   * shell answers (guest booting).
   */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<GuestShell> {
    const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
    let last: unknown;
    for (;;) {
      let shell: GuestShell | undefined;
      try {
        shell = new GuestShell(await openSocket(socketPath));
        // Lines typed while the guest boots may run late or be dropped; each probe has its own
        // marker, so only a live answer to the latest one counts.
        // Each probe waits longer than the one before: on a loaded machine a booting guest's shell
        // can take more than a few seconds to answer, and an impatient Ctrl-C restarts it.
        for (let probe = 0; !shell.closed; probe++) {
          const remaining = deadline - Date.now();
          if (remaining <= 0) break;
          try {
            // No Ctrl-C after a probe that got no answer: a shell still starting dies of it, its
            // respawn hangs up the tty and drops whatever is typed meanwhile (the next probe).
            const r = await shell.probe(Math.min(5_000 * 2 ** Math.min(probe, 3), remaining));
            if (r.code === 0) return shell;
          } catch (err) {
            last = err;
          }
        }
        last = shell.closed ?? last;
      } catch (err) {
        last = err;
      }
      shell?.close();
      if (Date.now() >= deadline) throw new Error(`no answer from the guest shell on ${socketPath}: ${String(last)}`);
      await sleep(200);
    }
  }

  /**
   * Runs a shell command (any script: quotes, newlines, `cd`, variables all work, and its effects
   * persist) with stdin from /dev/null, and returns what it printed and its exit code. Commands
   * run one at a time.
   *
   * On timeout the call rejects and a Ctrl-C is typed, but that rarely stops anything: the guest's
   * /init starts the shell in the background, so its commands ignore SIGINT (only programs with
   * their own handler, such as ping, stop). The shell stays busy until the command ends, and
   * later run()s wait behind it. Give guest commands their own limits: `ping -W2`, `nc -w2`,
   * `timeout 5 CMD`.
   */
  run(command: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(command, opts.timeoutMs ?? 30_000));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Types a probe line (no Ctrl-C on timeout) and says whether the shell answered it. */
  private probe(timeoutMs: number): Promise<RunResult> {
    const result = this.queue.then(() => this.frame("echo ready", Date.now() + timeoutMs, timeoutMs, false));
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.markClosed(new Error("GuestShell closed"));
    this.socket.destroy();
  }

  private async runNow(command: string, timeoutMs: number): Promise<RunResult> {
    const deadline = Date.now() + timeoutMs;
    const encoded = Buffer.from(command).toString("base64");
    if (encoded.length <= CHUNK) return this.frame(`eval "$(echo ${encoded} | base64 -d)" </dev/null`, deadline, timeoutMs);
    const file = `/tmp/.iaas-gs-${randomBytes(4).toString("hex")}`;
    for (let i = 0; i < encoded.length; i += CHUNK) {
      const part = await this.frame(`echo ${encoded.slice(i, i + CHUNK)} >>${file}`, deadline, timeoutMs);
      if (part.code !== 0) throw new Error(`GuestShell: writing the script to ${file} failed: ${part.output}`);
    }
    return this.frame(`eval "$(base64 -d ${file}; rm -f ${file})" </dev/null`, deadline, timeoutMs);
  }

  // Types one line that prints BEGIN+token, runs `line`, then prints END+token and the exit code.
  private async frame(line: string, deadline: number, timeoutMs: number, interrupt = true): Promise<RunResult> {
    const token = randomBytes(6).toString("hex");
    const begin = `${BEGIN}${token}\n`;
    const end = new RegExp(`${END}${token} (\\d+)\n`);
    this.socket.write(`printf '%s%s\\n' ${BEGIN} ${token}; ${line}; printf '%s%s %s\\n' ${END} ${token} $?\n`);
    for (;;) {
      const start = this.buffer.indexOf(begin);
      if (start >= 0) {
        const body = this.buffer.slice(start + begin.length);
        const m = end.exec(body);
        if (m) {
          this.buffer = body.slice(m.index + m[0].length);
          return { output: body.slice(0, m.index).replace(/\n$/, ""), code: Number(m[1]) };
        }
      }
      const closed = this.closed as Error | undefined; // set by the socket's handlers meanwhile
      if (closed) throw new Error(`${closed.message}; output so far: ${JSON.stringify(this.buffer.slice(-500))}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        if (interrupt) this.socket.write("\x03"); // Ctrl-C, for what it is worth (see run())
        throw new Error(`GuestShell: no end marker within ${timeoutMs} ms; output so far: ${JSON.stringify(this.buffer.slice(-500))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private markClosed(err: Error): void {
    this.closed ??= err;
    this.wake?.();
  }
}
