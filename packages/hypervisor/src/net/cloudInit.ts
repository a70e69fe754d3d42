import { invalid, shown } from "./invalid.js";
import { normalizeMac } from "./mac.js";

// The NoCloud seed's files (meta-data, user-data, network-config). Generated documents are JSON,
// which YAML parsers read as YAML: every string is double-quoted and escaped, so no value can be
// misread ("no", "52:54:00:12:34:56", "#", ": ") or inject structure. Characters YAML treats as line
// breaks or does not allow unescaped are written as \u escapes.

export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

const KEY_TYPES: ReadonlySet<string> = new Set(SSH_KEY_TYPES);
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_KEY_LINE = 16 * 1024;
// C0 controls except tab, DEL, C1 controls; and UTF-16 halves without their other half.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE_RE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const PUB_HINT = "pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub";

/** The key in canonical form ("TYPE BASE64[ COMMENT]"), or null when `line` is not an OpenSSH public key. */
function parseKeyLine(line: string): string | null {
  if (line.length > MAX_KEY_LINE || UNPRINTABLE_RE.test(line)) return null;
  const [type, b64, ...rest] = line.trim().split(/[ \t]+/);
  if (type === undefined || b64 === undefined || !KEY_TYPES.has(type)) return null;
  if (b64.length % 4 !== 0 || !BASE64_RE.test(b64)) return null;
  // The blob starts with the key type again: uint32 length, then the name.
  const blob = Buffer.from(b64, "base64");
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len !== type.length || blob.length <= 4 + len + 4) return null;
  if (blob.subarray(4, 4 + len).toString("latin1") !== type) return null;
  const comment = rest.join(" ");
  return comment === "" ? `${type} ${b64}` : `${type} ${b64} ${comment}`;
}

/**
 * The public keys in an authorized_keys-style text: one key per line, blank lines and '#' lines
 * skipped. Throws VALIDATION_FAILED naming `source` and the line for anything that is not an OpenSSH
 * public key (a private key in particular), and when there is no key at all.
 */
export function parseSshKeys(text: string, source: string): string[] {
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const key = parseKeyLine(line);
    if (key === null) {
      const isPrivate = /PRIVATE KEY/.test(line);
      throw invalid(
        `${source} line ${i + 1} is not an SSH public key${isPrivate ? " (it is a private key: do not hand it out)" : ""}`,
        PUB_HINT,
        { source, line: i + 1 },
      );
    }
    keys.push(key);
  }
  if (keys.length === 0) throw invalid(`${source} holds no SSH public key`, PUB_HINT, { source });
  return keys;
}

function checkKeys(sshKeys: readonly string[]): string[] {
  return sshKeys.map((k, i) => {
    const key = typeof k === "string" ? parseKeyLine(k) : null;
    if (key === null) throw invalid(`SSH key #${i + 1} is not an SSH public key`, PUB_HINT);
    return key;
  });
}

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A host name: one DNS label of 1 to 63 letters, digits and hyphens, lower-cased. */
export function validateHostname(h: string): string {
  const lower = typeof h === "string" ? h.toLowerCase() : "";
  if (!LABEL_RE.test(lower)) {
    throw invalid(`${shown(h)} is not a valid host name`, "use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen");
  }
  return lower;
}

export const MAX_USER_DATA_BYTES = 64 * 1024;

/** User-data as given (cloud-init reads many formats), checked to be non-empty and at most 64 KiB of UTF-8. */
export function validateUserData(text: string): string {
  if (typeof text !== "string" || text.trim() === "") {
    throw invalid("user-data is empty", "leave user-data out, or pass a #cloud-config document or a script starting with #!");
  }
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_USER_DATA_BYTES) {
    throw invalid(`user-data is ${bytes} bytes, more than the ${MAX_USER_DATA_BYTES} allowed`, "user-data is at most 64 KiB; put larger content in a script the user-data downloads", {
      bytes,
      limit: MAX_USER_DATA_BYTES,
    });
  }
  return text;
}

/**
 * `value` as JSON that YAML 1.1 parsers (PyYAML, which cloud-init uses) read back unchanged:
 * characters YAML takes for line breaks (NEL, LS, PS) or refuses unescaped (DEL, C1, BOM, U+FFFE/F)
 * are escaped as well.
 */
export function toYamlJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const INSTANCE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** NoCloud meta-data: instance-id (a new one makes cloud-init run again), local-hostname, public-keys. */
export function renderMetaData(m: { instanceId: string; hostname: string; sshKeys: string[] }): string {
  if (typeof m.instanceId !== "string" || !INSTANCE_ID_RE.test(m.instanceId)) {
    throw invalid(`instance id ${shown(m.instanceId)} is not allowed`, "use up to 128 letters, digits, '_', '.', ':' and '-' (e.g. the VM's id)");
  }
  const doc = { "instance-id": m.instanceId, "local-hostname": validateHostname(m.hostname), "public-keys": checkKeys(m.sshKeys) };
  return `${toYamlJson(doc)}\n`;
}

/**
 * user-data: the given document unchanged (after validateUserData), or a #cloud-config that sets
 * the host name, installs the SSH keys for the default user and turns password logins off.
 */
export function renderUserData(u: { hostname: string; sshKeys: string[]; userData?: string | null }): string {
  if (u.userData !== undefined && u.userData !== null) return validateUserData(u.userData);
  const doc = { hostname: validateHostname(u.hostname), ssh_authorized_keys: checkKeys(u.sshKeys), ssh_pwauth: false };
  return `#cloud-config\n${toYamlJson(doc)}\n`;
}

const NIC_NAME_RE = /^[a-z][a-z0-9_-]{0,14}$/;

/** network-config version 2: each NIC matched by MAC, renamed to `name`, configured by DHCP. */
export function renderNetworkConfig(nics: { mac: string; name: string }[]): string {
  const ethernets: Record<string, { match: { macaddress: string }; "set-name": string; dhcp4: boolean }> = {};
  const macs = new Set<string>();
  for (const nic of nics) {
    if (typeof nic.name !== "string" || !NIC_NAME_RE.test(nic.name)) {
      throw invalid(`NIC name ${shown(nic.name)} is not a valid interface name`, "use up to 15 characters from a-z, 0-9, '_' and '-', starting with a letter (e.g. eth0)");
    }
    const mac = normalizeMac(nic.mac);
    if (Object.hasOwn(ethernets, nic.name)) throw invalid(`two NICs are both named ${nic.name}`, "give every NIC its own name (eth0, eth1, ...)");
    if (macs.has(mac)) throw invalid(`two NICs both have MAC ${mac}`, "give every NIC its own MAC");
    macs.add(mac);
    ethernets[nic.name] = { match: { macaddress: mac }, "set-name": nic.name, dhcp4: true };
  }
  return `${toYamlJson({ version: 2, ethernets })}\n`;
}
