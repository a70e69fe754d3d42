import type pg from "pg";
import { isDatabaseUnavailable } from "../availability.js";
import type { Prisma } from "../generated/prisma/client.js";
import { Batcher } from "./Batcher.js";

/** One audit row as the API records it (`at` is the database's clock). */
export type AuditEntry = Omit<Prisma.AuditEventUncheckedCreateInput, "id" | "at">;

const AUDIT_SQL = `
INSERT INTO "AuditEvent" ("at", "actorTokenId", "actorName", "projectId", "requestId", "sourceAddress", "userAgent",
                          "method", "path", "outcome", "status", "action", "jobId", "detail")
SELECT now(), "actorTokenId", "actorName", "projectId", "requestId", "sourceAddress", "userAgent",
       "method", "path", "outcome", "status", "action", "jobId", "detail"
FROM jsonb_populate_recordset(NULL::"AuditEvent", $1::jsonb)`;

/**
 * The append-only audit trail's writer: one INSERT on the pool Prisma uses, and the entries of
 * requests that finish while one is being written go together in the next (see Batcher).
 */
export class AuditLog {
  private readonly batcher: Batcher<AuditEntry, true>;

  constructor(pool: pg.Pool) {
    this.batcher = new Batcher(
      async (entries) => {
        await pool.query(AUDIT_SQL, [JSON.stringify(entries)]);
        return entries.map(() => true as const);
      },
      { isShared: isDatabaseUnavailable },
    );
  }

  async append(entry: AuditEntry): Promise<void> {
    await this.batcher.call(entry);
  }
}
