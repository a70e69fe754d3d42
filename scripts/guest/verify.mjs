#!/usr/bin/env node
// Boots a test guest image under QEMU (TCG) and checks it: the marker must
// appear on the serial log, then QMP `system_powerdown` is sent and we measure
// whether the guest powers off by itself (QEMU exits) or ignores ACPI (then we
// fall back to `quit`, like the orchestrator's stop does).
//
// Usage:
//   node scripts/guest/verify.mjs bootsector [--out DIR] [--runs N]
//   node scripts/guest/verify.mjs linux      [--out DIR] [--runs N] [--nic user|none]
//   node scripts/guest/verify.mjs all        [--out DIR] [--runs N]
//   node scripts/guest/verify.mjs --image FILE --marker TEXT [--format raw|qcow2]
//        [--mem MiB] [--expect-acpi yes|no] [--nic user|none] [--timeout SEC]
//   --settle MS: wait this long after the marker before system_powerdown (500)
//
// The linux image is booted from a throw-away qcow2 overlay (as the
// orchestrator does), so the cached base image is never modified.
// Exit code 0 when every run behaved as expected. Plain Node, no dependencies.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const QEMU = process.env.QEMU || 'qemu-system-x86_64';

const PRESETS = {
  bootsector: { file: 'bootsector.raw', format: 'raw', marker: 'IAAS-BOOT-OK', mem: 128, expectAcpi: false },
  linux: { file: 'linux.qcow2', format: 'qcow2', marker: 'IAAS-GUEST-READY', mem: 256, expectAcpi: true, overlay: true },
};

function fail(msg) {
  console.error(`verify: error: ${msg}`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    out: process.env.IAAS_GUEST_DIR || join(repoRoot, '.cache', 'guests'),
    runs: 1,
    timeout: 60,
    nic: undefined,
    targets: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--out') o.out = val();
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--settle') o.settleMs = Number(val());
    else if (a === '--nic') o.nic = val();
    else if (a === '--image') o.image = val();
    else if (a === '--marker') o.marker = val();
    else if (a === '--format') o.format = val();
    else if (a === '--mem') o.mem = Number(val());
    else if (a === '--expect-acpi') o.expectAcpi = val() === 'yes';
    else if (a === '--overlay') o.overlay = true;
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 17).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else if (a === 'all') o.targets.push('bootsector', 'linux');
    else if (PRESETS[a]) o.targets.push(a);
    else fail(`unknown argument: ${a}`);
  }
  o.out = resolve(o.out);
  return o;
}

// user+system CPU time of a process (all threads) in ms, from /proc (Linux only)
function qemuCpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Math.round(((Number(fields[11]) + Number(fields[12])) * 1000) / 100); // USER_HZ = 100
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Qmp {
  constructor(path) {
    this.path = path;
    this.buf = '';
    this.waiters = [];
    this.events = [];
  }
  async connect(deadline) {
    for (;;) {
      try {
        await new Promise((res, rej) => {
          const s = createConnection(this.path);
          s.once('connect', () => {
            this.sock = s;
            res();
          });
          s.once('error', rej);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`QMP connect: ${e.message}`);
        await sleep(20);
      }
    }
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.event) this.events.push({ t: Date.now(), ...msg });
        else if (msg.QMP) this.greeting = msg;
        else if (this.waiters.length) this.waiters.shift()(msg);
      }
    });
    this.sock.on('error', () => {});
    while (!this.greeting) await sleep(5);
    await this.cmd('qmp_capabilities');
  }
  cmd(execute, args) {
    return new Promise((res) => {
      this.waiters.push(res);
      this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    });
  }
}

async function bootOnce(spec, label) {
  const dir = mkdtempSync(join(tmpdir(), 'iaas-verify-'));
  const log = join(dir, 'serial.log');
  const qmpPath = join(dir, 'qmp.sock');
  let disk = spec.image;
  let format = spec.format;
  try {
    if (spec.overlay) {
      disk = join(dir, 'overlay.qcow2');
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', spec.image, '-F', spec.format, disk]);
      if (r.status !== 0) throw new Error(`qemu-img create overlay failed: ${r.stderr}`);
      format = 'qcow2';
    }
    const args = [
      '-accel', 'tcg', '-m', String(spec.mem), '-display', 'none', '-nodefaults', '-no-user-config',
      '-serial', `file:${log}`,
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      '-drive', `file=${disk},format=${format},if=virtio`,
    ];
    if (spec.nic === 'user') args.push('-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0');
    const t0 = Date.now();
    const qemu = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    qemu.stderr.on('data', (d) => (stderr += d));
    let exitedAt = null;
    let exitCode = null;
    const exited = new Promise((res) =>
      qemu.on('exit', (code, sig) => {
        exitedAt = Date.now();
        exitCode = code ?? sig;
        res();
      }),
    );
    qemu.on('error', (e) => {
      stderr += String(e);
    });
    const deadline = t0 + spec.timeout * 1000;
    let markerAt = null;
    let markerCpuMs = null;
    let text = '';
    while (Date.now() < deadline && exitedAt === null) {
      text = existsSync(log) ? readFileSync(log, 'latin1') : '';
      if (text.includes(spec.marker)) {
        markerAt = Date.now();
        markerCpuMs = qemuCpuMs(qemu.pid);
        break;
      }
      await sleep(10);
    }
    // wall time depends on how busy the host is; QEMU's CPU time much less so
    const result = { label, marker: spec.marker, bootToMarkerMs: markerAt ? markerAt - t0 : null, qemuCpuMs: markerCpuMs };
    if (exitedAt !== null && markerAt === null) {
      result.ok = false;
      result.error = `QEMU exited (${exitCode}) before the marker: ${stderr.trim()}`;
      result.serialTail = text.slice(-1500);
      return result;
    }
    const qmp = new Qmp(qmpPath);
    await qmp.connect(Date.now() + 5000);
    if (markerAt === null) {
      result.ok = false;
      result.error = `marker not seen within ${spec.timeout}s`;
      result.serialTail = text.slice(-1500);
      await qmp.cmd('quit');
      await exited;
      return result;
    }
    // Let the guest settle, then make sure it is still running: a guest that
    // powers itself off right after the marker must not pass as "handles ACPI".
    await Promise.race([exited, sleep(spec.settleMs)]);
    const st = exitedAt === null ? await qmp.cmd('query-status') : null;
    if (exitedAt !== null || st?.return?.status !== 'running') {
      result.ok = false;
      result.error = `guest stopped by itself before system_powerdown (status ${st?.return?.status ?? 'exited'})`;
      result.serialTail = readFileSync(log, 'latin1').slice(-1500);
      if (exitedAt === null) await qmp.cmd('quit');
      await exited;
      return result;
    }
    const tPd = Date.now();
    await qmp.cmd('system_powerdown');
    const grace = spec.expectAcpi ? 15000 : 3000;
    await Promise.race([exited, sleep(grace)]);
    if (exitedAt !== null) {
      result.powerdown = 'guest powered off';
      result.powerdownToExitMs = exitedAt - tPd;
      const sd = qmp.events.find((e) => e.event === 'SHUTDOWN');
      result.shutdownEvent = sd ? sd.data : null;
    } else {
      result.powerdown = `ignored for ${grace / 1000}s, sent quit`;
      const tq = Date.now();
      await qmp.cmd('quit');
      await exited;
      result.quitToExitMs = exitedAt - tq;
    }
    const iPd = qmp.events.findIndex((e) => e.event === 'POWERDOWN');
    const iSd = qmp.events.findIndex((e) => e.event === 'SHUTDOWN');
    result.ok = spec.expectAcpi
      ? result.powerdownToExitMs !== undefined && iPd >= 0 && iSd > iPd && result.shutdownEvent?.guest === true
      : result.powerdownToExitMs === undefined && iPd >= 0;
    text = readFileSync(log, 'latin1');
    const extra = text.split(/\r*\n/).filter((l) => /^IAAS-/.test(l) && !l.startsWith(spec.marker));
    if (extra.length) result.otherMarkers = extra;
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const specs = [];
  if (o.image) {
    if (!o.marker) fail('--image needs --marker');
    specs.push({
      label: o.image,
      image: resolve(o.image),
      format: o.format || (o.image.endsWith('.qcow2') ? 'qcow2' : 'raw'),
      marker: o.marker,
      mem: o.mem || 256,
      expectAcpi: o.expectAcpi ?? true,
      overlay: !!o.overlay,
      nic: o.nic || 'none',
    });
  }
  for (const t of o.targets) {
    const p = PRESETS[t];
    specs.push({
      label: t,
      ...p,
      image: join(o.out, p.file),
      mem: o.mem || p.mem,
      nic: o.nic || (t === 'linux' ? 'user' : 'none'),
    });
  }
  if (!specs.length) fail('nothing to verify: give bootsector, linux, all or --image FILE --marker TEXT');
  const probe = spawnSync(QEMU, ['--version']);
  if (probe.error || probe.status !== 0) {
    fail(`${QEMU} not found: install it with: apt-get install -y qemu-system-x86 qemu-utils`);
  }
  let allOk = true;
  for (const s of specs) {
    s.timeout = o.timeout;
    s.settleMs = o.settleMs ?? 500;
    if (!existsSync(s.image)) fail(`${s.image} does not exist: build it first (scripts/guest/build-all.sh)`);
    for (let i = 0; i < o.runs; i++) {
      const r = await bootOnce(s, s.label);
      allOk &&= r.ok;
      console.log(JSON.stringify(r));
    }
  }
  process.exit(allOk ? 0 : 1);
}

main().catch((e) => {
  console.error(`verify: ${e.stack || e}`);
  process.exit(2);
});
