import { randomBytes } from "node:crypto";
import pg from "pg";
import { applyMigrations } from "./applyMigrations.js";

export interface TestDatabase {
  /** Connection URL of the new, migrated database. */
  url: string;
  /** Drops the database WITH (FORCE); safe to call more than once. */
  drop(): Promise<void>;
}

/**
 * Creates a uniquely named database (`iaas_t_<random>`) on the server of DATABASE_URL — or, when
 * DATABASE_URL is not set, on a PostgreSQL container started once per process — and applies every
 * migration to it.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.DATABASE_URL || (await postgresContainerUrl());
  const name = `iaas_t_${randomBytes(6).toString("hex")}`;
  await adminExecute(serverUrl, `CREATE DATABASE "${name}"`);
  const url = withDatabase(serverUrl, name);
  let dropped: Promise<void> | undefined;
  const drop = (): Promise<void> => (dropped ??= adminExecute(serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  try {
    await applyMigrations(url);
  } catch (err) {
    await drop();
    throw err;
  }
  return { url, drop };
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs one statement on the server's database from the URL, or on `postgres` if that one does not exist. */
async function adminExecute(serverUrl: string, sql: string): Promise<void> {
  for (const url of [serverUrl, withDatabase(serverUrl, "postgres")]) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      if (url !== serverUrl || !isMissingDatabase(err)) throw err;
      continue;
    }
    try {
      await client.query(sql);
      return;
    } finally {
      await client.end();
    }
  }
}

function isMissingDatabase(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "3D000";
}

let container: Promise<string> | undefined;

/** One container per process; testcontainers' reaper removes it when the process exits. */
function postgresContainerUrl(): Promise<string> {
  container ??= (async () => {
    try {
      const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
      const started = await new PostgreSqlContainer("postgres:16-alpine").start();
      return started.getConnectionUri();
    } catch (err) {
      container = undefined;
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(
        `createTestDatabase: DATABASE_URL is not set and a PostgreSQL container could not be started (${reason}). ` +
          "Set DATABASE_URL to a server where this user may create databases, e.g. " +
          "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres",
        { cause: err },
      );
    }
  })();
  return container;
}
