/** Driver-adapter error kinds that mean "the database cannot be reached now", not "the query is wrong". */
const UNAVAILABLE_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections", "TlsConnectionError"]);
/** Prisma's connection error codes: unreachable, timed out, closed, pool timeout. */
const UNAVAILABLE_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);
/** SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown, starting up). */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1-4])$/;
const UNAVAILABLE_TEXT =
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection terminated|connection (?:is )?(?:closed|refused)|terminating connection|the database system is (?:starting up|shutting down|in recovery mode)|Can't reach database|Timed out fetching a new connection|Client has encountered a connection error/i;

/**
 * Whether `err` says Postgres is down or unreachable (a restart, a network cut), as opposed to a
 * query that failed on its own: such errors are worth retrying once the database answers again.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 6; depth++) {
    const o = e as { code?: unknown; kind?: unknown; message?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } }; cause?: unknown };
    if (typeof o.code === "string" && (UNAVAILABLE_PRISMA_CODES.has(o.code) || UNAVAILABLE_SQLSTATE.test(o.code))) return true;
    if (typeof o.kind === "string" && UNAVAILABLE_KINDS.has(o.kind)) return true;
    const adapter = o.meta?.driverAdapterError?.cause;
    if (adapter && ((typeof adapter.kind === "string" && UNAVAILABLE_KINDS.has(adapter.kind)) || (typeof adapter.code === "string" && UNAVAILABLE_SQLSTATE.test(adapter.code)))) return true;
    if (typeof o.message === "string" && UNAVAILABLE_TEXT.test(o.message)) return true;
    e = o.cause;
  }
  return false;
}
