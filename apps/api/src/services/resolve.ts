import { IaasError, looksLikeUuid } from "@iaas/contracts";
import type { Db, Image, Job, Network, Vm } from "@iaas/db";

/** Finds a VM by id or name; an unknown reference is NOT_FOUND whatever its form. */
export async function findVm(db: Db, ref: string): Promise<Vm> {
  const vm = looksLikeUuid(ref)
    ? await db.vm.findUnique({ where: { id: ref.toLowerCase() } })
    : await db.vm.findUnique({ where: { name: ref } });
  if (!vm) throw new IaasError("NOT_FOUND", `VM '${ref}' not found`, { hint: "run `iaas vm list` to see the VMs" });
  return vm;
}

export async function findImage(db: Db, ref: string): Promise<Image> {
  const image = looksLikeUuid(ref)
    ? await db.image.findUnique({ where: { id: ref.toLowerCase() } })
    : await db.image.findUnique({ where: { name: ref } });
  if (!image) {
    throw new IaasError("NOT_FOUND", `image '${ref}' not found`, { hint: "run `iaas image list` to see the images" });
  }
  return image;
}

export async function findJob(db: Db, id: string): Promise<Job> {
  const job = looksLikeUuid(id) ? await db.job.findUnique({ where: { id: id.toLowerCase() } }) : null;
  if (!job) throw new IaasError("NOT_FOUND", `job '${id}' not found`, { hint: "run `iaas job list` to see recent jobs" });
  return job;
}

export async function findNetwork(db: Db, ref: string): Promise<Network> {
  const network = looksLikeUuid(ref)
    ? await db.network.findUnique({ where: { id: ref.toLowerCase() } })
    : await db.network.findUnique({ where: { name: ref } });
  if (!network) {
    throw new IaasError("NOT_FOUND", `network '${ref}' not found`, { hint: "run `iaas network list` to see the networks, or create it with `iaas network create`" });
  }
  return network;
}
