import { randomUUID } from "node:crypto";
import { IaasError } from "@iaas/contracts";
import type { QmpClient } from "./qmpClient.js";

/**
 * Runs a QMP background job (`snapshot-save`, `snapshot-load`, `snapshot-delete`): starts it with a
 * fresh `job-id`, waits for its `JOB_STATUS_CHANGE` to `concluded`, reads its error from
 * `query-jobs`, and dismisses it. A job that ends with an error throws QEMU_FAILED with QEMU's words.
 */
export async function runQmpJob(qmp: QmpClient, command: string, args: Record<string, unknown>, timeoutMs: number): Promise<void> {
  const jobId = `iaas-${randomUUID()}`;
  const concluded = qmp.waitForEvent("JOB_STATUS_CHANGE", timeoutMs, (e) => e.data["id"] === jobId && e.data["status"] === "concluded");
  try {
    await qmp.execute(command, { "job-id": jobId, ...args });
  } catch (err) {
    concluded.catch(() => undefined);
    throw err;
  }
  await concluded;
  const jobs = (await qmp.execute("query-jobs")) as { id?: string; error?: string }[];
  const error = jobs.find((j) => j.id === jobId)?.error;
  await qmp.execute("job-dismiss", { id: jobId });
  if (error !== undefined) {
    throw new IaasError("QEMU_FAILED", `${command} failed: ${error}`, { hint: "see the worker log; the VM keeps running" });
  }
}
