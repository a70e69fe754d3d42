import { z } from "zod";
import { Export, Image, Job, Vm } from "@iaas/contracts";

/**
 * The `202 Accepted` body of every request that makes a job: `{ job, vm?, image?, export? }`.
 * The resource may also be null (a replayed request whose VM or image is gone by now).
 */
export const JobAccepted = z.object({
  job: Job,
  vm: Vm.nullish(),
  image: Image.nullish(),
  export: Export.nullish(),
});
export type JobAccepted = z.infer<typeof JobAccepted>;
