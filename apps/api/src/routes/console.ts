import type { Request, Response } from "express";
import type { Redis } from "ioredis";
import { consoleStreamKey } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import { acquireStream } from "../http/streamLimits.js";

type StreamEntries = [id: string, fields: string[]][];

function dataOf(entries: StreamEntries): string {
  return entries.map(([, fields]) => fields[1] ?? "").join("");
}

/**
 * Serves a VM's serial console. The VM's worker tails QEMU's console file into a capped Redis
 * stream; this reads what is kept and, with `follow`, blocks for more until the client leaves or
 * the VM is deleted.
 */
export async function streamConsole(opts: {
  redis: Redis;
  prefix: string;
  db: PrismaClient;
  vmId: string;
  follow: boolean;
  req: Request;
  res: Response;
}): Promise<void> {
  const { redis, res } = opts;
  if (opts.follow) acquireStream(opts.req, res); // 429 over IAAS_MAX_STREAMS_PER_TOKEN; released when the response closes
  const key = consoleStreamKey(opts.prefix, opts.vmId);
  const history = (await redis.xrange(key, "-", "+")) as StreamEntries;
  res.status(200).type("text/plain; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  if (!opts.follow) {
    res.end(dataOf(history));
    return;
  }
  res.setHeader("X-Accel-Buffering", "no");
  res.write(dataOf(history));
  let lastId = history.at(-1)?.[0] ?? "0-0";
  const reader = redis.duplicate();
  let closed = false;
  opts.req.on("close", () => {
    closed = true;
    reader.disconnect();
  });
  try {
    while (!closed) {
      const reply = (await reader.xread("BLOCK", 2000, "STREAMS", key, lastId)) as [string, StreamEntries][] | null;
      if (closed) break;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length > 0) {
        res.write(dataOf(entries));
        lastId = entries.at(-1)?.[0] ?? lastId;
      } else if (!(await opts.db.vm.findUnique({ where: { id: opts.vmId }, select: { id: true } }))) {
        break;
      }
    }
  } catch (err) {
    if (!closed) throw err;
  } finally {
    if (!closed) reader.disconnect();
    res.end();
  }
}
