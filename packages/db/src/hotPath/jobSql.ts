// The job hot path as single statements: each is one CTE over a batch of inputs passed as one
// JSON array ($1), so N concurrent callers cost one round trip. Input rows are typed by Postgres
// from the table itself (jsonb_populate_recordset over "Job"), and enum columns are compared as
// text or written from untyped literals, so the SQL holds whether `Job.type` is text or an enum.

/**
 * Submit: insert the job with its first event (seq 1) and, where asked, take its VM's lock in the
 * same statement — only from the allowed states and while the VM's host heartbeats (database
 * clock). A job whose lock is refused is not inserted (the caller finds out why).
 * $1: [{ ...Job columns, lockFrom: text[] | null, onlineWithin: seconds, queuedAs: text }]
 */
export const SUBMIT_SQL = `
WITH r AS (SELECT * FROM jsonb_populate_recordset(NULL::"Job", $1::jsonb)),
x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("id" uuid, "lockFrom" text[], "onlineWithin" float8, "queuedAs" text)),
locked AS (
  UPDATE "Vm" AS v SET "lockJobId" = r."id", "updatedAt" = now()
  FROM r JOIN x ON x."id" = r."id"
  WHERE x."lockFrom" IS NOT NULL AND v."id" = r."vmId" AND v."lockJobId" IS NULL
    AND v."state"::text = ANY(x."lockFrom")
    AND EXISTS (SELECT 1 FROM "Host" AS h WHERE h."id" = v."hostId"
                AND h."lastHeartbeatAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => x."onlineWithin"))
  RETURNING v."lockJobId" AS "jobId", v."hostId"
),
admitted AS (
  SELECT r.*, COALESCE(l."hostId", r."hostId") AS "placedOn", x."queuedAs"
  FROM r JOIN x ON x."id" = r."id" LEFT JOIN locked AS l ON l."jobId" = r."id"
  WHERE x."lockFrom" IS NULL OR l."jobId" IS NOT NULL
),
job AS (
  INSERT INTO "Job" ("id", "type", "projectId", "actorName", "actorTokenId", "requestId", "state", "hostId", "vmId", "imageId",
                     "targetName", "payload", "maxAttempts", "timeoutMs", "idempotencyKey", "requestHash", "eventSeq", "createdAt")
  SELECT "id", "type", "projectId", "actorName", "actorTokenId", "requestId", 'queued', "placedOn", "vmId", "imageId",
         "targetName", "payload", "maxAttempts", "timeoutMs", "idempotencyKey", "requestHash", 1, now()
  FROM admitted
  RETURNING *
),
event AS (
  INSERT INTO "JobEvent" ("jobId", "seq", "type", "level", "message", "state", "createdAt")
  SELECT "id", 1, 'state'::"JobEventType", 'info'::"JobEventLevel", "queuedAs" || ' queued on host ' || "placedOn", 'queued', now() FROM admitted
)
SELECT * FROM job`;

/**
 * Start: `queued → running`, or the redelivery of a `running` job (resumed): count the attempt,
 * stamp startedAt (first run) and the lease, and append the `running` event with the next seq.
 * $1: [{ id, host, instance, leaseSeconds }]
 */
export const START_SQL = `
WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("id" uuid, "host" text, "instance" text, "leaseSeconds" float8)),
old AS (SELECT j."id", j."state" FROM "Job" AS j JOIN x ON x."id" = j."id" ORDER BY j."id" FOR UPDATE OF j),
run AS (
  UPDATE "Job" AS j SET "state" = 'running', "startedAt" = COALESCE(j."startedAt", now()), "attempts" = j."attempts" + 1,
    "workerInstance" = x."instance", "leaseExpiresAt" = now() + make_interval(secs => x."leaseSeconds"), "eventSeq" = j."eventSeq" + 1
  FROM old JOIN x ON x."id" = old."id"
  WHERE j."id" = old."id" AND old."state"::text IN ('queued', 'running')
  RETURNING j.*, old."state"::text AS "startedFrom", x."host" AS "startedOn"
),
event AS (
  INSERT INTO "JobEvent" ("jobId", "seq", "type", "level", "message", "state", "createdAt")
  SELECT "id", "eventSeq", 'state'::"JobEventType", 'info'::"JobEventLevel",
    CASE WHEN "startedFrom" = 'running'
           THEN 'resumed on host ' || "startedOn" || ' (attempt ' || "attempts" || ') after its previous run was interrupted'
         WHEN "attempts" > 1 THEN 'attempt ' || "attempts" || ' started on host ' || "startedOn"
         ELSE 'started on host ' || "startedOn" END,
    'running', now()
  FROM run
)
SELECT * FROM run`;

/**
 * Progress: record it on the job row and as a `progress` event with the next seq.
 * $1: [{ id, progress, message }]
 */
export const PROGRESS_SQL = `
WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("id" uuid, "progress" jsonb, "message" text)),
upd AS (
  UPDATE "Job" AS j SET "progress" = x."progress", "eventSeq" = j."eventSeq" + 1
  FROM x WHERE j."id" = x."id"
  RETURNING j."id", j."eventSeq"
),
event AS (
  INSERT INTO "JobEvent" ("jobId", "seq", "type", "level", "message", "progress", "createdAt")
  SELECT u."id", u."eventSeq", 'progress'::"JobEventType", 'info'::"JobEventLevel", x."message", x."progress", now() FROM upd AS u JOIN x ON x."id" = u."id"
)
SELECT "id" FROM upd`;

/**
 * Finish: move the job to its terminal state (only from `from`), release what it held — every VM
 * whose lock names it (a clone holds its source too), its image's lock, and backup locks for the
 * job types that take them ($2) — and append the final event with the next seq.
 * $1: [{ id, state, from, result?, errorCode?, errorMessage?, errorHint?, error?, message }]
 */
export const FINISH_SQL = `
WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("id" uuid, "state" text, "from" text[], "result" jsonb,
             "errorCode" text, "errorMessage" text, "errorHint" text, "error" jsonb, "message" text)),
done AS (
  UPDATE "Job" AS j SET "state" = x."state"::"JobState", "finishedAt" = now(), "leaseExpiresAt" = NULL, "result" = x."result",
    "progress" = CASE WHEN x."state" = 'succeeded' THEN '{"phase":"done","percent":100}'::jsonb ELSE j."progress" END,
    "errorCode" = x."errorCode", "errorMessage" = x."errorMessage", "errorHint" = x."errorHint", "eventSeq" = j."eventSeq" + 1
  FROM x WHERE j."id" = x."id" AND j."state"::text = ANY(x."from")
  RETURNING j."id", j."eventSeq", j."imageId", j."type"::text AS "jobType"
),
vms AS (UPDATE "Vm" AS v SET "lockJobId" = NULL, "updatedAt" = now() FROM done AS d WHERE v."lockJobId" = d."id" RETURNING v."id"),
images AS (
  UPDATE "Image" AS i SET "lockJobId" = NULL, "updatedAt" = now() FROM done AS d
  WHERE i."id" = d."imageId" AND i."lockJobId" = d."id" RETURNING i."id"
),
backups AS (
  UPDATE "Backup" AS b SET "lockJobId" = NULL FROM done AS d
  WHERE d."jobType" = ANY($2::text[]) AND b."lockJobId" = d."id" RETURNING b."id"
),
event AS (
  INSERT INTO "JobEvent" ("jobId", "seq", "type", "level", "message", "state", "error", "createdAt")
  SELECT d."id", d."eventSeq", 'state'::"JobEventType", (CASE WHEN x."error" IS NULL THEN 'info' ELSE 'error' END)::"JobEventLevel", x."message", x."state"::"JobState", x."error", now()
  FROM done AS d JOIN x ON x."id" = d."id"
)
SELECT "id" FROM done`;
