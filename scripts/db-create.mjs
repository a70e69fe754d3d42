#!/usr/bin/env node
// Creates the database named in DATABASE_URL if it does not exist yet (run before `prisma migrate deploy`).
// Usage: DATABASE_URL=postgresql://user@host:5432/iaas node scripts/db-create.mjs
import pg from "pg";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("db-create: DATABASE_URL is not set");
  process.exit(2);
}

const target = new URL(url);
const database = decodeURIComponent(target.pathname.replace(/^\//, ""));
if (!database) {
  console.error("db-create: DATABASE_URL names no database");
  process.exit(2);
}

/** Connects to a maintenance database on the same server (postgres, then template1). */
async function connectAdmin() {
  let lastError;
  for (const name of ["postgres", "template1"]) {
    const admin = new URL(url);
    admin.pathname = `/${name}`;
    const client = new pg.Client({ connectionString: admin.toString() });
    try {
      await client.connect();
      return client;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => {});
      if (err?.code !== "3D000") break; // only retry when the maintenance database is missing
    }
  }
  throw lastError;
}

let client;
try {
  client = await connectAdmin();
} catch (err) {
  console.error(`db-create: cannot connect to ${target.host}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
try {
  const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
  if (rowCount) {
    console.log(`db-create: database "${database}" exists`);
  } else {
    try {
      await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
      console.log(`db-create: created database "${database}"`);
    } catch (err) {
      if (err?.code !== "42P04") throw err; // created concurrently by someone else: fine
      console.log(`db-create: database "${database}" exists`);
    }
  }
} catch (err) {
  console.error(`db-create: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await client.end();
}
