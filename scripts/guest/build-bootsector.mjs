#!/usr/bin/env node
// Builds bootsector.raw: the smallest possible test guest.
//
// A 512-byte MBR with hand-assembled x86 real-mode code that writes the line
// "IAAS-BOOT-OK\r\n" to COM1 and then halts forever (cli; hlt; jmp). It ignores
// ACPI, so `system_powerdown` does nothing and a stop has to fall back to QMP
// `quit` -- that is intended (it exercises the orchestrator's fallback path).
// The image is padded to 1 MiB because SeaBIOS ignores virtio-blk/AHCI disks
// of 128 KiB or less.
//
// Usage: node scripts/guest/build-bootsector.mjs [--out DIR] [--force]
//   DIR defaults to $IAAS_GUEST_DIR, else <repo>/.cache/guests.
// Plain Node, no dependencies. Idempotent: skips the build when the output
// exists and is newer than this script.

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MARKER = 'IAAS-BOOT-OK';
const IMAGE_SIZE = 1024 * 1024; // 1 MiB: BIOS skips virtio disks <= 128 KiB

const scriptPath = fileURLToPath(import.meta.url);
const repoRoot = resolve(dirname(scriptPath), '..', '..');

function parseArgs(argv) {
  const opts = { out: process.env.IAAS_GUEST_DIR || join(repoRoot, '.cache', 'guests'), force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') {
      if (!argv[i + 1]) fail('--out needs a directory');
      opts.out = argv[++i];
    } else if (a.startsWith('--out=')) opts.out = a.slice(6);
    else if (a === '--force' || a === '-f') opts.force = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: build-bootsector.mjs [--out DIR] [--force]');
      process.exit(0);
    } else fail(`unknown argument: ${a}`);
  }
  opts.out = resolve(opts.out);
  return opts;
}

function fail(msg) {
  console.error(`build-bootsector: error: ${msg}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// The boot sector. The BIOS loads it at 0000:7C00 (some BIOSes use 07C0:0000,
// so all jumps are relative and DS is set explicitly; only the message address
// depends on the load address 0x7C00). Interrupts stay disabled throughout:
// the UART is polled.
//
// Layout (offset in the sector, bytes, instruction). Every rel8 jump target and
// the message address are re-checked by buildBootSector() below.
const ORG = 0x7c00;
const LAYOUT = [
  //   off   bytes                  instruction                    comment
  [0x00, 'fa'], //                   cli                            no interrupts, ever
  [0x01, '31 c0'], //                xor ax, ax
  [0x03, '8e d8'], //                mov ds, ax                     DS = 0 (lodsb reads DS:SI)
  [0x05, '8e d0'], //                mov ss, ax
  [0x07, 'bc 00 7c'], //             mov sp, 0x7c00                 stack below the sector
  [0x0a, 'fc'], //                   cld                            lodsb counts upwards
  // Program the 16550 UART on COM1 for 115200 8N1 (QEMU does not need it, real
  // UARTs do). Each line: mov dx, PORT (ba lo hi); mov al, VAL (b0 v); out dx, al (ee)
  [0x0b, 'ba fb 03 b0 80 ee'], //    LCR 0x3fb := 0x80              DLAB on
  [0x11, 'ba f8 03 b0 01 ee'], //    DLL 0x3f8 := 0x01              divisor 1 = 115200 baud
  [0x17, 'ba f9 03 b0 00 ee'], //    DLM 0x3f9 := 0x00
  [0x1d, 'ba fb 03 b0 03 ee'], //    LCR 0x3fb := 0x03              8N1, DLAB off
  [0x23, 'ba fa 03 b0 07 ee'], //    FCR 0x3fa := 0x07              FIFO on and cleared
  [0x29, 'be 4a 7c'], //             mov si, 0x7c4a                 SI = MSG (ORG + 0x4a)
  // next:
  [0x2c, 'ac'], //                   lodsb                          al = [ds:si], si++
  [0x2d, '84 c0'], //                test al, al                    end of string?
  [0x2f, '74 14'], //                jz halt                        0x31 + 0x14 = 0x45
  [0x31, '88 c3'], //                mov bl, al                     keep the character
  [0x33, 'ba fd 03'], //             mov dx, 0x3fd                  COM1 line status register
  // wait:
  [0x36, 'ec'], //                   in al, dx
  [0x37, 'a8 20'], //                test al, 0x20                  bit 5: THR empty
  [0x39, '74 fb'], //                jz wait                        0x3b - 5 = 0x36
  [0x3b, 'ba f8 03'], //             mov dx, 0x3f8                  COM1 transmit holding register
  [0x3e, '88 d8'], //                mov al, bl
  [0x40, 'ee'], //                   out dx, al                     send the byte
  [0x41, 'eb e9'], //                jmp next                       0x43 - 0x17 = 0x2c
  [0x43, '90 90'], //                nop; nop                       padding
  // halt:
  [0x45, 'fa'], //                   cli
  [0x46, 'f4'], //                   hlt
  [0x47, 'eb fc'], //                jmp halt                       0x49 - 4 = 0x45 (an NMI wakes hlt)
  [0x49, '90'], //                   nop                            padding
  // 0x4a MSG: "IAAS-BOOT-OK\r\n\0"; zeros up to 0x1fe; 0x1fe: 55 aa (boot signature)
];
const MSG_AT = 0x4a;
const LABELS = { next: 0x2c, wait: 0x36, halt: 0x45 };

export function buildBootSector() {
  const sector = Buffer.alloc(512, 0);
  let pos = 0;
  for (const [off, hex] of LAYOUT) {
    if (off !== pos) throw new Error(`layout gap/overlap at 0x${off.toString(16)} (expected 0x${pos.toString(16)})`);
    for (const h of hex.split(' ')) sector[pos++] = parseInt(h, 16);
  }
  if (pos !== MSG_AT) throw new Error('code does not end at MSG');
  // Self-checks of the hand-computed operands.
  const rel8 = (insnOff) => insnOff + 2 + (sector[insnOff + 1] << 24 >> 24);
  const checks = [
    [rel8(0x2f), LABELS.halt, 'jz halt'],
    [rel8(0x39), LABELS.wait, 'jz wait'],
    [rel8(0x41), LABELS.next, 'jmp next'],
    [rel8(0x47), LABELS.halt, 'jmp halt'],
    [sector.readUInt16LE(0x2a), ORG + MSG_AT, 'mov si, MSG'],
  ];
  for (const [got, want, what] of checks) {
    if (got !== want) throw new Error(`${what}: target 0x${got.toString(16)} != 0x${want.toString(16)}`);
  }
  const msg = Buffer.from(`${MARKER}\r\n\0`, 'latin1');
  msg.copy(sector, MSG_AT);
  if (MSG_AT + msg.length > 446) throw new Error('boot code overlaps the partition table');
  sector[510] = 0x55; // boot signature
  sector[511] = 0xaa;
  return sector;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const outFile = join(opts.out, 'bootsector.raw');
  const scriptMtime = statSync(scriptPath).mtimeMs;
  let existing = null;
  try {
    existing = statSync(outFile);
  } catch {
    /* not built yet */
  }
  if (!opts.force && existing && existing.mtimeMs > scriptMtime && existing.size === IMAGE_SIZE) {
    console.log(`build-bootsector: ${outFile} is up to date (newer than the script); nothing to do`);
    console.log(outFile);
    return;
  }
  console.log(`build-bootsector: assembling 512-byte MBR (marker "${MARKER}" on COM1, then cli; hlt)`);
  const sector = buildBootSector();
  const image = Buffer.alloc(IMAGE_SIZE, 0);
  sector.copy(image, 0);
  mkdirSync(opts.out, { recursive: true });
  const tmp = `${outFile}.tmp-${process.pid}`;
  writeFileSync(tmp, image);
  renameSync(tmp, outFile);
  // sanity: read back
  const back = readFileSync(outFile);
  if (back.length !== IMAGE_SIZE || back[510] !== 0x55 || back[511] !== 0xaa) fail('read-back check failed');
  console.log(`build-bootsector: wrote ${outFile} (${IMAGE_SIZE} bytes, padded to 1 MiB)`);
  console.log(outFile);
}

if (process.argv[1] && resolve(process.argv[1]) === scriptPath) main();
