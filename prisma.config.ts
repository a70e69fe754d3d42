// Prisma CLI configuration (Prisma 6.19): migrations run through the JS schema engine with
// @prisma/adapter-pg, so no engine binary has to be downloaded. Everything below only runs inside
// the Prisma CLI process; the application's client is created in @iaas/db.
//
// Workarounds (see /work/shared/FACTS.md, "Prisma"):
//  1. adapter-pg cannot deserialize Postgres' catalog types "char" (18) and name (19) and their
//     arrays (1002/1003), which migrate reads while introspecting: report them as text / text[].
//  2. adapter-pg's own shadow-database handling is unusable (runs against the main database for a
//     connection string; its DROP fails while its pool is still connected): create a uniquely named
//     shadow database over a separate admin connection and drop it WITH (FORCE) on dispose.
//  3. The wasm schema engine leaves 10 s / 60 s timers behind: unref long timers so commands exit.
//  4. adapter-pg's executeScript splits a migration on every ';', even inside a function body or a
//     comment: send the whole script as one simple query instead (Postgres runs it as one
//     implicit transaction, as Prisma's own engine does).
import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { defineConfig } from "prisma/config";

const TEXT = 25;
const TEXT_ARRAY = 1009;
/** Catalog types adapter-pg cannot deserialize → the type Prisma should see instead. */
const CATALOG_TYPES_AS_TEXT = new Map<number, number>([
  [18, TEXT], // "char"
  [19, TEXT], // name
  [1002, TEXT_ARRAY], // "char"[]
  [1003, TEXT_ARRAY], // name[]
]);
// pg's typings only list scalar builtins, but its text parser for text[] (1009) exists at runtime.
const getTypeParser = pg.types.getTypeParser as (oid: number, format: "text") => (value: string) => unknown;
const parseTextArray = getTypeParser(TEXT_ARRAY, "text");

interface FieldLike {
  name: string;
  dataTypeID: number;
}
interface ResultLike {
  fields: FieldLike[];
  rows: unknown[];
}

function isResultLike(value: unknown): value is ResultLike {
  return (
    typeof value === "object" &&
    value !== null &&
    Array.isArray((value as { fields?: unknown }).fields) &&
    Array.isArray((value as { rows?: unknown }).rows)
  );
}

/** Rewrites a pg result in place so that catalog "char"/name columns look like text/text[]. */
function reportCatalogTypesAsText(result: unknown): void {
  if (Array.isArray(result)) {
    for (const part of result) reportCatalogTypesAsText(part);
    return;
  }
  if (!isResultLike(result)) return;
  result.fields.forEach((field, index) => {
    const replacement = CATALOG_TYPES_AS_TEXT.get(field.dataTypeID);
    if (replacement === undefined) return;
    if (replacement === TEXT_ARRAY) {
      // pg has no parser for these array types: the values are still '{a,b}' strings.
      for (const row of result.rows) {
        if (Array.isArray(row)) {
          const value: unknown = row[index];
          if (typeof value === "string") row[index] = parseTextArray(value);
        } else if (typeof row === "object" && row !== null) {
          const record = row as Record<string, unknown>;
          const value = record[field.name];
          if (typeof value === "string") record[field.name] = parseTextArray(value);
        }
      }
    }
    field.dataTypeID = replacement;
  });
}

type QueryFn = (this: pg.Client, ...args: unknown[]) => unknown;
type QueryCallback = (err: Error | null, result: unknown) => void;

/** pg.Client whose query results report catalog "char"/name columns as text (pools use it via `Client`). */
class CatalogTextClient extends pg.Client {}
const clientQuery = pg.Client.prototype.query as unknown as QueryFn;
const catalogTextQuery: QueryFn = function (...args) {
  const last = args.at(-1);
  if (typeof last === "function") {
    const callback = last as QueryCallback;
    args[args.length - 1] = (err: Error | null, result: unknown) => {
      if (!err) reportCatalogTypesAsText(result);
      callback(err, result);
    };
    return clientQuery.apply(this, args);
  }
  const returned = clientQuery.apply(this, args);
  if (returned instanceof Promise) {
    return returned.then((result: unknown) => {
      reportCatalogTypesAsText(result);
      return result;
    });
  }
  return returned; // a Submittable (cursor/stream): not used by the adapter
};
Object.defineProperty(CatalogTextClient.prototype, "query", { value: catalogTextQuery, writable: true });

/** Unrefs timers of ≥ 10 s so the schema engine's leftover timers don't keep the CLI alive. */
function unrefLongTimers(): void {
  const marker = Symbol.for("iaas.prisma.unrefLongTimers");
  const state = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (state[marker]) return; // the config may be loaded more than once per process
  state[marker] = true;
  const original = globalThis.setTimeout;
  const patched = (callback: (...cbArgs: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
    const timer = original(callback, ms, ...rest);
    if (typeof ms === "number" && ms >= 10_000) timer.unref();
    return timer;
  };
  globalThis.setTimeout = Object.assign(patched, { __promisify__: original.__promisify__ }) as typeof setTimeout;
}
unrefLongTimers();

interface ConnectionFields {
  host: string;
  port: number;
  user?: string;
  password?: string;
  database: string;
}

/** Splits DATABASE_URL into fields: adapter-pg ignores `database` overrides when given a connection string. */
function connectionFields(databaseUrl: string): ConnectionFields {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!database) throw new Error(`DATABASE_URL names no database: ${url.origin}`);
  const fields: ConnectionFields = {
    host: url.searchParams.get("host") ?? decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, "$1")),
    port: url.port ? Number(url.port) : 5432,
    database,
  };
  if (url.username) fields.user = decodeURIComponent(url.username);
  if (url.password) fields.password = decodeURIComponent(url.password);
  return fields;
}

// `prisma generate` needs no database, but the CLI resolves the schema's env("DATABASE_URL") first and,
// when that fails, falls back to downloading a query engine. Give it a placeholder; the migrate
// adapter below still insists on a real DATABASE_URL.
const configuredDatabaseUrl = process.env.DATABASE_URL;
if (!configuredDatabaseUrl) process.env.DATABASE_URL = "postgresql://unset@127.0.0.1:5432/unset";

function databaseUrl(): string {
  if (!configuredDatabaseUrl) {
    throw new Error("DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/iaas)");
  }
  return configuredDatabaseUrl;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Runs one statement over a short-lived connection to the main database. */
async function adminExecute(fields: ConnectionFields, sql: string): Promise<void> {
  const client = new pg.Client(fields);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function adapterFactory(fields: ConnectionFields): PrismaPg {
  // allowExitOnIdle: the CLI does not always dispose its adapters; idle pooled sockets must not
  // keep the process alive for the 10 s idle timeout.
  return new PrismaPg({ ...fields, Client: CatalogTextClient, allowExitOnIdle: true });
}

type Connected = Awaited<ReturnType<PrismaPg["connect"]>>;

/** Runs each migration script whole (one simple query: no parameters) instead of split on ';'. */
function wholeScripts(adapter: Connected): Connected {
  adapter.executeScript = async (script: string) => {
    await adapter.executeRaw({ sql: script, args: [], argTypes: [] });
  };
  return adapter;
}

/** The migrate adapter: adapter-pg for the main database, our own shadow-database lifecycle. */
function migrationAdapter(fields: ConnectionFields) {
  const main = adapterFactory(fields);
  return {
    provider: "postgres" as const,
    adapterName: main.adapterName,
    connect: async () => wholeScripts(await main.connect()),
    async connectToShadowDb() {
      const shadow = `prisma_shadow_${randomUUID().replaceAll("-", "")}`;
      await adminExecute(fields, `CREATE DATABASE ${quoteIdent(shadow)}`);
      const adapter = wholeScripts(await adapterFactory({ ...fields, database: shadow }).connect());
      const dispose = adapter.dispose.bind(adapter);
      adapter.dispose = async () => {
        try {
          await dispose();
        } finally {
          await adminExecute(fields, `DROP DATABASE IF EXISTS ${quoteIdent(shadow)} WITH (FORCE)`);
        }
      };
      return adapter;
    },
  };
}

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => migrationAdapter(connectionFields(databaseUrl())),
});
