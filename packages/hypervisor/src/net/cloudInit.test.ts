import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findExecutable, run } from "../run.js";
import {
  MAX_USER_DATA_BYTES,
  parseSshKeys,
  renderMetaData,
  renderNetworkConfig,
  renderUserData,
  toYamlJson,
  validateHostname,
  validateUserData,
} from "./cloudInit.js";
import { thrown } from "./thrown.fixture.js";

/** An OpenSSH public key line whose blob starts with `blobType` (normally the same as `type`). */
function key(type: string, comment = "", blobType = type, payload = randomBytes(32)): string {
  const name = Buffer.from(blobType, "latin1");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length);
  const plen = Buffer.alloc(4);
  plen.writeUInt32BE(payload.length);
  const b64 = Buffer.concat([len, name, plen, payload]).toString("base64");
  return comment === "" ? `${type} ${b64}` : `${type} ${b64} ${comment}`;
}

const ED = key("ssh-ed25519", "alice@laptop");
const RSA = key("ssh-rsa", "", "ssh-rsa", randomBytes(256));

describe("parseSshKeys", () => {
  it("returns one key per line, skipping blank and comment lines", () => {
    const text = `# my keys\n\n${ED}\r\n  ${RSA}  \n# end\n`;
    expect(parseSshKeys(text, "keys.pub")).toEqual([ED, RSA]);
  });

  it("accepts every supported key type with or without a comment", () => {
    for (const type of [
      "ssh-ed25519",
      "ssh-rsa",
      "ecdsa-sha2-nistp256",
      "ecdsa-sha2-nistp384",
      "ecdsa-sha2-nistp521",
      "sk-ssh-ed25519@openssh.com",
      "sk-ecdsa-sha2-nistp256@openssh.com",
    ]) {
      const line = key(type, "a comment with spaces");
      expect(parseSshKeys(line, "k")).toEqual([line]);
      expect(parseSshKeys(key(type), "k")).toHaveLength(1);
    }
  });

  it("refuses a private key, naming the file and line, and hints at the .pub file", () => {
    const priv = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    const err = thrown(() => parseSshKeys(priv, "/home/a/.ssh/id_ed25519"));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toContain("/home/a/.ssh/id_ed25519 line 1 is not an SSH public key");
    expect(err.message).toContain("private key");
    expect(err.hint).toBe("pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub");
  });

  it("reports the line number of the first bad line", () => {
    const err = thrown(() => parseSshKeys(`# c\n${ED}\n\nhello world\n`, "keys.txt"));
    expect(err.message).toBe("keys.txt line 4 is not an SSH public key");
    expect(err.details).toEqual({ source: "keys.txt", line: 4 });
  });

  it("refuses lines that only look like keys", () => {
    const bad = [
      "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
      "ssh-ed25519",
      "ssh-ed25519 not*base64",
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", // truncated: length not a multiple of 4
      key("ssh-ed25519", "", "ssh-rsa"), // blob says another type
      "ssh-ed25519 " + Buffer.from("\u0000\u0000\u0000\u000bssh-ed25519").toString("base64"), // no key material
      `command="/bin/sh" ${ED}`, // authorized_keys options are not taken
      `${ED} comment\u0007bell`,
      "---- BEGIN SSH2 PUBLIC KEY ----",
    ];
    for (const line of bad) {
      const err = thrown(() => parseSshKeys(line, "k.pub"));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.message).toBe("k.pub line 1 is not an SSH public key");
    }
  });

  it("refuses a file without any key", () => {
    const err = thrown(() => parseSshKeys("# nothing here\n\n", "empty.pub"));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toBe("empty.pub holds no SSH public key");
  });

  it.skipIf(findExecutable("ssh-keygen") === null)("accepts keys made by ssh-keygen and refuses their private halves", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sshkeys-"));
    try {
      for (const type of ["ed25519", "rsa", "ecdsa"]) {
        const file = join(dir, `id_${type}`);
        await run(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", `test ${type}`, "-f", file]);
        const pub = await readFile(`${file}.pub`, "utf8");
        expect(parseSshKeys(pub, `${file}.pub`)).toEqual([pub.trim()]);
        expect(thrown(() => parseSshKeys(execFileSync("cat", [file], { encoding: "utf8" }), file)).message).toContain("private key");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("validateHostname", () => {
  it("lower-cases a DNS label of 1 to 63 characters", () => {
    expect(validateHostname("Web-1")).toBe("web-1");
    expect(validateHostname("a")).toBe("a");
    expect(validateHostname("a".repeat(63))).toBe("a".repeat(63));
  });

  it("refuses anything else", () => {
    for (const bad of ["", "-a", "a-", "a_b", "a.b", "a".repeat(64), "a b", "ä"]) {
      const err = thrown(() => validateHostname(bad));
      expect(err.code).toBe("VALIDATION_FAILED");
      expect(err.hint).toContain("letters, digits and hyphens");
    }
  });
});

describe("validateUserData", () => {
  it("returns user-data unchanged up to 64 KiB of UTF-8", () => {
    const text = "#!/bin/sh\necho hi\n";
    expect(validateUserData(text)).toBe(text);
    const max = "#" + "x".repeat(MAX_USER_DATA_BYTES - 1);
    expect(validateUserData(max)).toBe(max);
  });

  it("counts bytes, not characters, and hints at downloading larger content", () => {
    const text = "#cloud-config\n" + "é".repeat(MAX_USER_DATA_BYTES / 2);
    const err = thrown(() => validateUserData(text));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.message).toContain(`more than the ${MAX_USER_DATA_BYTES} allowed`);
    expect(err.hint).toBe("user-data is at most 64 KiB; put larger content in a script the user-data downloads");
  });

  it("refuses empty user-data", () => {
    expect(thrown(() => validateUserData("")).message).toBe("user-data is empty");
    expect(thrown(() => validateUserData(" \n\t")).message).toBe("user-data is empty");
  });
});

describe("seed documents", () => {
  it("writes meta-data with the instance id, host name and keys", () => {
    const text = renderMetaData({ instanceId: "vm-7c9e6679", hostname: "Web-1", sshKeys: [ED] });
    expect(JSON.parse(text)).toEqual({ "instance-id": "vm-7c9e6679", "local-hostname": "web-1", "public-keys": [ED] });
    expect(text.endsWith("\n")).toBe(true);
  });

  it("refuses an instance id that could break the document", () => {
    expect(thrown(() => renderMetaData({ instanceId: "a\nb", hostname: "x", sshKeys: [] })).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderMetaData({ instanceId: "", hostname: "x", sshKeys: [] })).code).toBe("VALIDATION_FAILED");
  });

  it("writes a #cloud-config with host name, keys and no password logins", () => {
    const text = renderUserData({ hostname: "web-1", sshKeys: [ED, RSA] });
    expect(text.startsWith("#cloud-config\n")).toBe(true);
    expect(JSON.parse(text.slice("#cloud-config\n".length))).toEqual({ hostname: "web-1", ssh_authorized_keys: [ED, RSA], ssh_pwauth: false });
  });

  it("passes given user-data through unchanged", () => {
    const mine = "#cloud-config\nruncmd:\n  - echo hi\n";
    expect(renderUserData({ hostname: "web-1", sshKeys: [ED], userData: mine })).toBe(mine);
    expect(renderUserData({ hostname: "web-1", sshKeys: [], userData: null })).toContain("#cloud-config");
    expect(thrown(() => renderUserData({ hostname: "web-1", sshKeys: [], userData: "" })).message).toBe("user-data is empty");
  });

  it("refuses keys that are not public keys in the documents", () => {
    expect(thrown(() => renderUserData({ hostname: "a", sshKeys: ["ssh-ed25519 x\nruncmd: [reboot]"] })).message).toBe("SSH key #1 is not an SSH public key");
    expect(thrown(() => renderMetaData({ instanceId: "i", hostname: "a", sshKeys: [ED, "nope"] })).message).toBe("SSH key #2 is not an SSH public key");
  });

  it("writes network-config version 2 matching NICs by MAC", () => {
    const text = renderNetworkConfig([
      { mac: "52:54:00:AA:00:01", name: "eth0" },
      { mac: "52:54:00:aa:00:02", name: "eth1" },
    ]);
    expect(JSON.parse(text)).toEqual({
      version: 2,
      ethernets: {
        eth0: { match: { macaddress: "52:54:00:aa:00:01" }, "set-name": "eth0", dhcp4: true },
        eth1: { match: { macaddress: "52:54:00:aa:00:02" }, "set-name": "eth1", dhcp4: true },
      },
    });
  });

  it("refuses NICs with clashing or invalid names and MACs", () => {
    const mac = "52:54:00:aa:00:01";
    expect(thrown(() => renderNetworkConfig([{ mac, name: "eth0" }, { mac: "52:54:00:aa:00:02", name: "eth0" }])).message).toContain("both named eth0");
    expect(thrown(() => renderNetworkConfig([{ mac, name: "eth0" }, { mac, name: "eth1" }])).message).toContain("both have MAC");
    expect(thrown(() => renderNetworkConfig([{ mac, name: "eth0: {}" }])).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderNetworkConfig([{ mac, name: "a-very-long-name0" }])).code).toBe("VALIDATION_FAILED");
    expect(thrown(() => renderNetworkConfig([{ mac: "ff:ff:ff:ff:ff:ff", name: "eth0" }])).code).toBe("VALIDATION_FAILED");
  });

  it("escapes the characters YAML reads as line breaks or refuses", () => {
    expect(toYamlJson("a\u0085b\u2028c\u2029d\u007fe\ufeff")).toBe('"a\\u0085b\\u2028c\\u2029d\\u007fe\\ufeff"');
    expect(toYamlJson({ k: "é😀" })).toBe('{\n  "k": "é😀"\n}');
  });
});

const python = findExecutable("python3");
const hasPyYaml = python !== null && (() => {
  try {
    execFileSync(python, ["-c", "import yaml"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasPyYaml)("seed documents read by PyYAML (the parser cloud-init uses)", () => {
  async function pyYaml(text: string): Promise<unknown> {
    const out = await run([python ?? "python3", "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"], { input: text });
    return JSON.parse(out.stdout) as unknown;
  }

  it("reads back tricky values exactly", async () => {
    const tricky = key("ssh-ed25519", `no: yes # "quoted" 'single' : {} [] & * ! | > % @ \` \\ é 😀 \u2028 null ~ 0x1F 1:20`);
    const meta = renderMetaData({ instanceId: "0b6f2a9e-1c1d-4a53-9a57-5d1f7c3e2a10", hostname: "no", sshKeys: [tricky] });
    expect(await pyYaml(meta)).toEqual({ "instance-id": "0b6f2a9e-1c1d-4a53-9a57-5d1f7c3e2a10", "local-hostname": "no", "public-keys": [tricky] });
    const user = renderUserData({ hostname: "null", sshKeys: [tricky] });
    expect(await pyYaml(user)).toEqual({ hostname: "null", ssh_authorized_keys: [tricky], ssh_pwauth: false });
    // An all-digit MAC unquoted would be a YAML 1.1 sexagesimal integer.
    const odd = { s: "a\u0085b\u2028c\u2029d\u007fe\u0009f\u0000g\ufeffh" };
    expect(await pyYaml(toYamlJson(odd))).toEqual(odd);
    const net = renderNetworkConfig([{ mac: "52:54:00:12:34:56", name: "eth0" }]);
    expect(await pyYaml(net)).toEqual({ version: 2, ethernets: { eth0: { match: { macaddress: "52:54:00:12:34:56" }, "set-name": "eth0", dhcp4: true } } });
  });
});
