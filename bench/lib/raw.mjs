// Raw BullMQ baseline: a Queue and a Worker in this process, on the same Redis as the pipeline.
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";

const now = () => performance.timeOrigin + performance.now();
// Same job options as the API's JobQueues.enqueue, so Redis does comparable work per job.
const JOB_OPTS = { attempts: 1, removeOnComplete: { age: 3600, count: 5000 }, removeOnFail: { age: 7 * 24 * 3600 } };

function connect(redisUrl) {
  return new Redis(redisUrl, { maxRetriesPerRequest: null });
}

/**
 * (a) `n` sequential jobs: latency = processor's first line − just before `queue.add`; each job
 * completes before the next is added. `warmup` unmeasured jobs run first.
 */
export async function rawLatency({ redisUrl, prefix, n, warmup }) {
  const conn = connect(redisUrl);
  const workerConn = connect(redisUrl);
  const queue = new Queue("raw-latency", { connection: conn, prefix });
  const started = new Map();
  const done = new Map();
  const worker = new Worker(
    "raw-latency",
    async (job) => {
      started.set(job.id, now());
      return null;
    },
    { connection: workerConn, prefix, concurrency: 50 },
  );
  worker.on("completed", (job) => done.get(job.id)?.());
  worker.on("failed", (job, err) => done.get(job?.id)?.(err));
  try {
    await worker.waitUntilReady();
    const samples = [];
    for (let i = 0; i < warmup + n; i++) {
      const jobId = `lat-${i}`;
      const finished = new Promise((resolve, reject) => done.set(jobId, (err) => (err ? reject(err) : resolve())));
      const t0 = now();
      await queue.add("noop", { n: i }, { ...JOB_OPTS, jobId });
      await finished;
      done.delete(jobId);
      if (i >= warmup) samples.push(started.get(jobId) - t0);
    }
    return samples;
  } finally {
    await worker.close();
    await queue.close();
    conn.disconnect();
    workerConn.disconnect();
  }
}

/** (b) `m` jobs added with addBulk, worker concurrency 50: jobs/s from the add to the last completion. */
export async function rawThroughput({ redisUrl, prefix, m }) {
  const conn = connect(redisUrl);
  const workerConn = connect(redisUrl);
  const queue = new Queue("raw-throughput", { connection: conn, prefix });
  let completed = 0;
  let resolveAll, rejectAll;
  const all = new Promise((res, rej) => ((resolveAll = res), (rejectAll = rej)));
  const worker = new Worker("raw-throughput", async () => null, { connection: workerConn, prefix, concurrency: 50 });
  worker.on("completed", () => ++completed === m && resolveAll(now()));
  worker.on("failed", (job, err) => rejectAll(new Error(`raw job ${job?.id} failed: ${err.message}`)));
  try {
    await worker.waitUntilReady();
    const jobs = Array.from({ length: m }, (_, i) => ({ name: "noop", data: { n: i }, opts: JOB_OPTS }));
    const t0 = now();
    await queue.addBulk(jobs);
    const t1 = await all;
    return { seconds: (t1 - t0) / 1000, jobsPerSecond: m / ((t1 - t0) / 1000) };
  } finally {
    await worker.close();
    await queue.close();
    conn.disconnect();
    workerConn.disconnect();
  }
}
