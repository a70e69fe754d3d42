// The real pipeline: REST submit (API) → Postgres outbox + BullMQ → worker → Postgres.

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function submit(api, n) {
  const res = await api.post("/v1/bench/noop", { n });
  if (res.status !== 202 || !res.json?.job?.id) throw new Error(`POST /v1/bench/noop (n=${n}) answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res.json.job.id;
}

function describeFailure(job) {
  const e = job.error ?? job;
  return `job ${job.id} ended ${job.state}: ${e.code ?? e.errorCode ?? "?"} ${e.message ?? e.errorMessage ?? ""}`.trim();
}

/**
 * (a) `n` sequential POSTs; each waits (GET /v1/jobs/:id/wait) until the job succeeded. Latency =
 * Job.startedAt (written by the worker, ms precision) − Date.now() just before the POST; the
 * breakdown splits it at Job.createdAt (the submit statement's time).
 */
export async function pipelineLatency({ api, db, n, warmup }) {
  const sent = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = Date.now();
    const id = await submit(api, i);
    const res = await api.get(`/v1/jobs/${id}/wait?timeout=10`);
    if (res.status !== 200) throw new Error(`GET /v1/jobs/${id}/wait answered ${res.status}: ${res.text.slice(0, 300)}`);
    if (res.json.state !== "succeeded") {
      throw new Error(res.json.state === "queued" || res.json.state === "running" ? `job ${id} (n=${i}) still ${res.json.state} after 10 s` : describeFailure(res.json));
    }
    if (i >= warmup) sent.push({ id, t0 });
  }
  const rows = await db.job.findMany({ where: { id: { in: sent.map((s) => s.id) } }, select: { id: true, createdAt: true, startedAt: true } });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const latency = [];
  const breakdown = { written: [], delivered: [] };
  for (const { id, t0 } of sent) {
    const row = byId.get(id);
    if (!row?.startedAt) throw new Error(`job ${id} has no startedAt in Postgres`);
    latency.push(row.startedAt.getTime() - t0);
    // Where it went: POST → the submit statement ran (Job.createdAt), → the start statement ran.
    breakdown.written.push(row.createdAt.getTime() - t0);
    breakdown.delivered.push(row.startedAt.getTime() - row.createdAt.getTime());
  }
  return { latency, breakdown };
}

/**
 * (b) `m` jobs POSTed by `clients` concurrent keep-alive clients; jobs/s from the first submit until
 * Postgres counts all of them `succeeded` (count polled every 100 ms).
 */
export async function pipelineThroughput({ api, db, m, clients, firstN, timeoutMs = 300_000 }) {
  const counts = async () => {
    const groups = await db.job.groupBy({ by: ["state"], _count: { _all: true } });
    return Object.fromEntries(groups.map((g) => [g.state, g._count._all]));
  };
  const before = await counts();
  const target = (before.succeeded ?? 0) + m;
  let next = 0;
  let submitError;
  const t0 = now();
  const submitters = Array.from({ length: clients }, async () => {
    while (next < m && !submitError) {
      const i = next++;
      await submit(api, firstN + i).catch((err) => (submitError ??= err));
    }
  });
  let submitDone = false;
  const submitted = Promise.all(submitters).then(() => (submitDone = true));
  let submitSeconds;
  submitted.then(() => (submitSeconds = (now() - t0) / 1000));
  for (;;) {
    if (submitError) throw submitError;
    const c = await counts();
    if ((c.failed ?? 0) > (before.failed ?? 0) || (c.cancelled ?? 0) > (before.cancelled ?? 0)) {
      const bad = await db.job.findFirst({ where: { state: { in: ["failed", "cancelled"] } } });
      throw new Error(`a pipeline throughput job did not succeed: ${describeFailure(bad)}`);
    }
    if (submitDone && (c.succeeded ?? 0) >= target) {
      const seconds = (now() - t0) / 1000;
      return { seconds, submitSeconds, jobsPerSecond: m / seconds };
    }
    if (now() - t0 > timeoutMs) throw new Error(`pipeline throughput: only ${(c.succeeded ?? 0) - (before.succeeded ?? 0)} of ${m} jobs succeeded after ${timeoutMs / 1000}s (states now: ${JSON.stringify(c)})`);
    await sleep(100);
  }
}
