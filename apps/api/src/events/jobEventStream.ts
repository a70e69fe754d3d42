import type { Response } from "express";
import { isTerminalJobState } from "@iaas/contracts";
import type { Job, PrismaClient } from "@iaas/db";
import type { ClientWatch } from "../http/clientWatch.js";
import { toJobDto, toJobEventDto } from "../services/dto.js";
import { jobNotFound } from "../services/resolve.js";
import type { JobEventHub, JobSubscription } from "./JobEventHub.js";

/** Rows read per query; a longer backlog is sent in several reads. */
const BATCH = 500;
/** A comment line after this long without a write keeps proxies from closing an idle stream. */
const KEEP_ALIVE_MS = 15_000;

/**
 * Server-Sent Events: replays the events after `after`, then sends each new one as the hub
 * announces it (read by its sequence number: nothing is polled), and ends with `event: end`
 * carrying the final job (the DTO of GET /v1/jobs/:id). `sub` must be open before `job` was
 * read, so an event committed in between is announced to it.
 */
export async function streamJobEvents(
  db: PrismaClient,
  hub: JobEventHub,
  sub: JobSubscription,
  job: Job,
  after: number,
  watch: ClientWatch,
  res: Response,
): Promise<void> {
  res.status(200);
  res.setHeader("Content-Type", "text/event-stream");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Connection", "keep-alive");
  res.setHeader("X-Accel-Buffering", "no");
  res.flushHeaders();
  let last = after;
  // The terminal event is written in the same transaction as the terminal state: none follows it.
  let final = isTerminalJobState(job.state);
  let lastWrite = Date.now();
  try {
    for (;;) {
      const events = await hub.eventsAfter(job.id, last, BATCH);
      if (watch.gone) return;
      for (const ev of events) {
        res.write(`id: ${ev.seq}\nevent: ${ev.type}\ndata: ${JSON.stringify(toJobEventDto(ev))}\n\n`);
        last = ev.seq;
        if (ev.type === "state" && ev.state !== null && isTerminalJobState(ev.state)) final = true;
      }
      sub.lastSeq = last;
      if (events.length > 0) lastWrite = Date.now();
      if (events.length === BATCH) continue;
      if (final) {
        const now = await db.job.findUnique({ where: { id: job.id } });
        if (watch.gone || now === null) return;
        res.write(`event: end\ndata: ${JSON.stringify(toJobDto(now))}\n\n`);
        return;
      }
      // Sleep until the hub says something new was committed (or a keep-alive is due).
      for (;;) {
        const wake = await sub.next(KEEP_ALIVE_MS - (Date.now() - lastWrite), watch.signal);
        if (watch.gone) return;
        if (wake === null) {
          res.write(": keep-alive\n\n");
          lastWrite = Date.now();
          continue;
        }
        if (wake.resync) {
          // Notifications may have been lost, or the job deleted: look at the row again.
          const now = await db.job.findUnique({ where: { id: job.id }, select: { state: true } });
          if (watch.gone || now === null) return;
          if (isTerminalJobState(now.state)) final = true;
        }
        if (wake.resync || wake.seq > last) break;
      }
    }
  } finally {
    res.end();
  }
}

/**
 * Long-poll: the job once it is final, or as it is when `deadlineMs` passes or the client leaves
 * (then null). Reads the job again only when the hub announces its terminal event (or asks for a
 * re-read). `sub` must be open before `job` was read.
 */
export async function waitForFinalJob(
  db: PrismaClient,
  sub: JobSubscription,
  job: Job,
  deadlineMs: number,
  watch: ClientWatch,
): Promise<Job | null> {
  let current = job;
  sub.lastSeq = job.eventSeq;
  while (!isTerminalJobState(current.state)) {
    const wake = await sub.next(deadlineMs - Date.now(), watch.signal);
    if (watch.gone) return null;
    if (wake === null) break;
    if (!wake.final && !wake.resync) {
      sub.lastSeq = Math.max(sub.lastSeq, wake.seq);
      continue;
    }
    const now = await db.job.findUnique({ where: { id: current.id } });
    if (watch.gone) return null;
    if (now === null) throw jobNotFound(current.id); // deleted meanwhile (a forced VM delete, retention)
    current = now;
    sub.lastSeq = now.eventSeq;
  }
  return current;
}
