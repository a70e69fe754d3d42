import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

/** prisma/migrations at the repository root; the same relative path from src/testing and dist/testing. */
export const migrationsDir = fileURLToPath(new URL("../../../../prisma/migrations/", import.meta.url));

/** Applies every prisma/migrations/<name>/migration.sql in name order (no Prisma CLI, no history table). */
export async function applyMigrations(databaseUrl: string, dir: string = migrationsDir): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  if (names.length === 0) throw new Error(`applyMigrations: no migrations in ${dir}`);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const name of names) {
      const sql = await readFile(join(dir, name, "migration.sql"), "utf8");
      try {
        await client.query(sql);
      } catch (err) {
        throw new Error(`applyMigrations: ${name} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  } finally {
    await client.end();
  }
  return names;
}
