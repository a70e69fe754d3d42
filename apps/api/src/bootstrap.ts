#!/usr/bin/env node
// `npm run up`'s first-run step: makes sure the CLI config holds a working admin token. If the
// config file ($IAAS_CONFIG, default ~/.config/iaas/config.json) already has an active token of
// this database, nothing changes; otherwise a new admin token is created (only its hash is stored)
// and written to the file with mode 0600, next to the API's URL.
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createPrismaClient } from "@iaas/db";
import { generateToken, hashToken, tokenPrefix } from "./auth/tokens.js";

async function readConfig(file: string): Promise<Record<string, unknown>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, "utf8"));
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}; fix or remove it, then run again`);
  }
}

async function main(): Promise<void> {
  const url = process.argv[2];
  const databaseUrl = process.env["DATABASE_URL"];
  if (!url || !databaseUrl) throw new Error("usage: DATABASE_URL=... node apps/api/dist/bootstrap.js API_URL");
  const file = process.env["IAAS_CONFIG"] || path.join(os.homedir(), ".config", "iaas", "config.json");
  const config = await readConfig(file);
  const db = createPrismaClient(databaseUrl);
  try {
    const current = typeof config["token"] === "string" ? config["token"] : "";
    const prefix = tokenPrefix(current);
    const row = prefix ? await db.apiToken.findUnique({ where: { prefix } }) : null;
    const usable = row && row.hash === hashToken(current) && !row.revokedAt && (!row.expiresAt || row.expiresAt > new Date()) && row.role === "admin";
    if (usable && config["url"] === url) {
      process.stdout.write(`${file} already holds admin token '${row.name}'\n`);
      return;
    }
    let token = current;
    let name = row?.name ?? "";
    if (!usable) {
      const taken = new Set((await db.apiToken.findMany({ select: { name: true } })).map((t) => t.name));
      name = "admin";
      for (let i = 2; taken.has(name); i++) name = `admin-${i}`;
      const made = generateToken();
      await db.apiToken.create({ data: { name, prefix: made.prefix, hash: made.hash, role: "admin", createdBy: `npm run up (${os.userInfo().username})` } });
      token = made.token;
    }
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ ...config, url, token }, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, file);
    process.stdout.write(usable ? `${file}: URL set to ${url} (token '${name}')\n` : `created admin token '${name}' and wrote it to ${file} (mode 0600)\n`);
  } finally {
    await db.$disconnect();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bootstrap: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
