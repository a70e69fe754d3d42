import { run } from "./run.js";

/**
 * The unprivileged account QEMU runs as when the worker is root (IAAS_QEMU_USER): QEMU opens its
 * disk, seed, sockets, taps and /dev/kvm as this user, and so does a guest that escapes into it.
 */
export interface QemuUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups: the account's own (and /dev/kvm's group where the worker uses KVM). */
  groups: readonly number[];
}

function id(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xfffffffe) throw new RangeError(`${what} must be a numeric id, got ${n}`);
  return n;
}

/**
 * The argv prefix that runs a program as `user` and nothing more, as libvirt starts QEMU:
 * setpriv (util-linux) sets the real, effective and saved uid and gid and the supplementary
 * groups, empties the inheritable and bounding capability sets, and sets no_new_privs, then
 * execs the program (same pid). Used instead of QEMU's `-runas`, which QEMU 7.2 runs after its
 * seccomp filter is in place, so `elevateprivileges=deny` kills it at its first setgid.
 */
export function runAsArgv(user: QemuUser, setpriv = "setpriv"): string[] {
  const groups = [...new Set(user.groups.map((g) => id(g, "group")))];
  return [
    setpriv,
    `--reuid=${id(user.uid, "uid")}`,
    `--regid=${id(user.gid, "gid")}`,
    groups.length === 0 ? "--clear-groups" : `--groups=${groups.join(",")}`,
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
  ];
}

/** Parses `id -G`'s output: whitespace-separated group ids. */
export function parseIdList(text: string): number[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((t) => t !== "")
    .map((t) => {
      if (!/^\d+$/.test(t)) throw new Error(`not a numeric id: '${t}'`);
      return Number(t);
    });
}

/**
 * Looks an account up (a name, or a uid the system knows) with `id`, so NSS sources other than
 * /etc/passwd count. Refuses uid 0: that is no privilege drop. Throws a plain Error whose message
 * says what to set (the worker reports it as a configuration error).
 */
export async function resolveQemuUser(name: string): Promise<QemuUser> {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}\$?$/.test(name)) throw new Error(`'${name}' is not a user name`);
  const query = async (flag: string): Promise<number[]> => {
    try {
      return parseIdList((await run(["id", flag, "--", name], { timeoutMs: 10_000 })).stdout);
    } catch (err) {
      throw new Error(`user '${name}' does not exist on this host (${(err as Error).message.split("\n")[0] ?? ""})`, { cause: err });
    }
  };
  const [uid] = await query("-u");
  const [gid] = await query("-g");
  if (uid === undefined || gid === undefined) throw new Error(`could not read the ids of user '${name}'`);
  if (uid === 0) throw new Error(`user '${name}' is root (uid 0): QEMU would keep every privilege`);
  const groups = (await query("-G")).filter((g) => g !== gid);
  return { name, uid, gid, groups };
}

/**
 * Whether `user` may open `path` for reading and writing (access(2) as that user, ACLs
 * included): run through the same privilege drop QEMU gets.
 */
export async function userCanOpen(user: QemuUser, path: string): Promise<boolean> {
  const r = await run([...runAsArgv(user), "test", "-r", path, "-a", "-w", path], { allowExitCodes: [1], timeoutMs: 10_000 });
  return r.code === 0;
}

/** Whether `user` may search (traverse) the directory `path`, and so every directory above it. */
export async function userCanSearch(user: QemuUser, path: string): Promise<boolean> {
  const r = await run([...runAsArgv(user), "test", "-d", path, "-a", "-x", path], { allowExitCodes: [1], timeoutMs: 10_000 });
  return r.code === 0;
}
