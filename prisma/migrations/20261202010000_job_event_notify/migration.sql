-- Pushed job events: every committed JobEvent row notifies channel `iaas_job_events` with
-- "<jobId>:<seq>", plus ":final" when the event moves the job to a terminal state. The trigger
-- covers every writer, Prisma calls and raw statements alike. Postgres delivers the notification
-- when the inserting transaction commits, and never for one that rolls back. Each API process
-- LISTENs on one connection and wakes the event streams and long-polls of that job.
CREATE FUNCTION "iaas_notify_job_event"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(
    'iaas_job_events',
    NEW."jobId"::text || ':' || NEW."seq"::text
      || CASE WHEN NEW."type" = 'state' AND NEW."state" IN ('succeeded', 'failed', 'cancelled') THEN ':final' ELSE '' END
  );
  RETURN NULL;
END
$$;

CREATE TRIGGER "JobEvent_notify" AFTER INSERT ON "JobEvent" FOR EACH ROW EXECUTE FUNCTION "iaas_notify_job_event"();
