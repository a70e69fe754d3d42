import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client.js";
import { AuditLog } from "./hotPath/AuditLog.js";
import { JobStatements } from "./hotPath/JobStatements.js";

export interface DatabaseOptions {
  /**
   * Connections in the pool Prisma and the job statements share (node-postgres' default: 10).
   * A worker sizes it to its job concurrency plus its background loops.
   */
  poolSize?: number;
}

/** The pool behind each client made here, and the job statements that run on it. */
const pools = new WeakMap<PrismaClient, Registered>();

interface Registered {
  pool: pg.Pool;
  statements: JobStatements;
  audit: AuditLog;
}

/**
 * A Prisma client talking to `databaseUrl` through a node-postgres pool (no engine binaries).
 * Every session of the pool runs with `TimeZone=UTC`: the columns are `timestamp without time
 * zone` holding UTC, so `now()` in raw SQL must produce UTC too.
 */
export function createPrismaClient(databaseUrl: string, options: DatabaseOptions = {}): PrismaClient {
  const pool = new pg.Pool({ connectionString: databaseUrl, options: "-c TimeZone=UTC", ...(options.poolSize ? { max: options.poolSize } : {}) });
  // An idle connection that breaks (a Postgres restart) is dropped by the pool; the next query
  // reports the outage. Without a listener the pool's 'error' event would end the process.
  pool.on("error", () => undefined);
  const client = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(client, { pool, statements: new JobStatements(pool), audit: new AuditLog(pool) });
  return client;
}

/** The node-postgres pool under a client made by `createPrismaClient` (shared with Prisma). */
export function poolOf(db: PrismaClient): pg.Pool {
  return registered(db).pool;
}

/**
 * The single-statement job writes (submit, start, progress, finish) of a client made by
 * `createPrismaClient`, run on the pool Prisma uses; concurrent calls share round trips.
 */
export function jobStatements(db: PrismaClient): JobStatements {
  return registered(db).statements;
}

/** The audit trail's writer of a client made by `createPrismaClient` (batched inserts on its pool). */
export function auditLog(db: PrismaClient): AuditLog {
  return registered(db).audit;
}

function registered(db: PrismaClient): Registered {
  const found = pools.get(db);
  if (!found) throw new Error("this Prisma client was not made by createPrismaClient: it has no pool for the job statements");
  return found;
}
