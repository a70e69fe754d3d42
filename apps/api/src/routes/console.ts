import type { Request, Response } from "express";
import type { Redis } from "ioredis";
import { consoleStreamKey } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import type { ClientWatch } from "../http/clientWatch.js";
import { acquireStream } from "../http/streamLimits.js";

type StreamEntries = [id: string, fields: string[]][];

/** How long one XREAD waits for output before the VM's existence is checked again. */
const BLOCK_MS = 2000;

function dataOf(entries: StreamEntries): string {
  return entries.map(([, fields]) => fields[1] ?? "").join("");
}

/** The client name of the Redis connections console follows block on (`CLIENT LIST` shows them). */
export function consoleReaderName(prefix: string): string {
  return `${prefix}:console-follow`;
}

/**
 * Serves a VM's serial console. The VM's worker tails QEMU's console file into a capped Redis
 * stream; this reads what is kept and, with `follow`, blocks for more on a Redis connection of its
 * own until the client leaves (the connection is closed at once) or the VM is deleted. `watch`
 * must be taken before the route's first await.
 */
export async function streamConsole(opts: {
  redis: Redis;
  prefix: string;
  db: PrismaClient;
  vmId: string;
  follow: boolean;
  req: Request;
  res: Response;
  watch: ClientWatch;
}): Promise<void> {
  const { redis, res, watch } = opts;
  if (watch.gone) return;
  if (opts.follow) acquireStream(opts.req, res); // 429/503 over IAAS_MAX_STREAMS_PER_TOKEN/IAAS_MAX_STREAMS; released when the response closes
  const key = consoleStreamKey(opts.prefix, opts.vmId);
  const history = (await redis.xrange(key, "-", "+")) as StreamEntries;
  if (watch.gone) return;
  res.status(200).type("text/plain; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  if (!opts.follow) {
    res.end(dataOf(history));
    return;
  }
  res.setHeader("X-Accel-Buffering", "no");
  res.write(dataOf(history));
  let lastId = history.at(-1)?.[0] ?? "0-0";
  // XREAD BLOCK holds its connection: one per follower, closed the moment the client leaves (also
  // while it is still connecting). It connects before its first command (the API's Redis client
  // queues nothing while offline), and its command timeout outlasts the block.
  const reader = redis.duplicate({ connectionName: consoleReaderName(opts.prefix), lazyConnect: true, commandTimeout: BLOCK_MS + 5000 });
  // A lost connection rejects the pending XREAD, which ends the stream; the event adds nothing.
  reader.on("error", () => undefined);
  const stop = (): void => reader.disconnect();
  watch.signal.addEventListener("abort", stop, { once: true });
  try {
    if (!watch.gone) await reader.connect();
    while (!watch.gone) {
      const reply = (await reader.xread("BLOCK", BLOCK_MS, "STREAMS", key, lastId)) as [string, StreamEntries][] | null;
      if (watch.gone) break;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length > 0) {
        res.write(dataOf(entries));
        lastId = entries.at(-1)?.[0] ?? lastId;
      } else if (!(await opts.db.vm.findUnique({ where: { id: opts.vmId }, select: { id: true } }))) {
        break;
      }
    }
  } catch (err) {
    if (!watch.gone) throw err;
  } finally {
    watch.signal.removeEventListener("abort", stop);
    reader.disconnect();
    res.end();
  }
}
