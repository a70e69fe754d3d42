import { z } from "zod";
import { Image, Job, Vm } from "@iaas/contracts";

/**
 * The `202 Accepted` body of every request that makes a job: `{ job, vm?, image? }`. The resource
 * may also be null (a replayed request whose VM or image is gone by now).
 */
export const JobAccepted = z.object({
  job: Job,
  vm: Vm.nullish(),
  image: Image.nullish(),
});
export type JobAccepted = z.infer<typeof JobAccepted>;
