import { open, stat } from "node:fs/promises";
import type { Redis } from "ioredis";
import { consoleStreamKey } from "@iaas/contracts";

const CHUNK = 16 * 1024;
/** Stream entries kept per VM (each at most 16 KiB): roughly the last 1 MiB of console output. */
const MAX_ENTRIES = 64;

/**
 * Copies each VM's serial console file into a capped Redis stream, from which the API serves
 * `iaas vm console` for VMs on any host. The read offset lives in Redis too, so a restarted
 * worker continues where it stopped instead of sending everything again.
 */
export class ConsoleTailer {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private offsetKey(vmId: string): string {
    return `${consoleStreamKey(this.prefix, vmId)}:offset`;
  }

  /** Starts a VM's console afresh (QEMU truncates the file when it starts). */
  async reset(vmId: string): Promise<void> {
    await this.redis.multi().del(consoleStreamKey(this.prefix, vmId)).set(this.offsetKey(vmId), "0").exec();
  }

  async forget(vmId: string): Promise<void> {
    await this.redis.del(consoleStreamKey(this.prefix, vmId), this.offsetKey(vmId));
  }

  /** Sends what the file has gained since the last call. */
  async pump(vmId: string, file: string): Promise<void> {
    const size = await stat(file).then(
      (s) => s.size,
      () => null,
    );
    if (size === null) return;
    let offset = Number((await this.redis.get(this.offsetKey(vmId))) ?? 0);
    if (size < offset) offset = 0;
    if (size === offset) return;
    const fh = await open(file, "r");
    try {
      const key = consoleStreamKey(this.prefix, vmId);
      while (offset < size) {
        const buf = Buffer.alloc(Math.min(CHUNK, size - offset));
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        await this.redis
          .multi()
          .xadd(key, "MAXLEN", "~", String(MAX_ENTRIES), "*", "data", buf.subarray(0, bytesRead).toString("utf8"))
          .set(this.offsetKey(vmId), String(offset))
          .exec();
      }
    } finally {
      await fh.close();
    }
  }
}
