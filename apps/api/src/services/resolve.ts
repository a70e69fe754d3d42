import { IaasError, looksLikeUuid } from "@iaas/contracts";
import type { Db, Image, Job, Network, Vm } from "@iaas/db";
import { currentProjectId, inProject } from "../auth/scope.js";

// Every lookup is confined to the request's project: what lies outside it is NOT_FOUND, exactly
// as what does not exist, so a token never learns that another project has it.

/** Finds a VM by id or name; an unknown reference is NOT_FOUND whatever its form. */
export async function findVm(db: Db, ref: string): Promise<Vm> {
  const vm = looksLikeUuid(ref)
    ? await db.vm.findFirst({ where: { id: ref.toLowerCase(), ...inProject() } })
    : await db.vm.findUnique({ where: { projectId_name: { projectId: currentProjectId(), name: ref } } });
  if (!vm) throw new IaasError("NOT_FOUND", `VM '${ref}' not found`, { hint: "run `iaas vm list` to see the VMs" });
  return vm;
}

/** Finds an image of the project, or a public one (the project's own wins on a name both have). */
export async function findImage(db: Db, ref: string): Promise<Image> {
  const visible = { OR: [inProject(), { public: true }] };
  const image = looksLikeUuid(ref)
    ? await db.image.findFirst({ where: { id: ref.toLowerCase(), ...visible } })
    : ((await db.image.findUnique({ where: { projectId_name: { projectId: currentProjectId(), name: ref } } })) ??
      (await db.image.findFirst({ where: { name: ref, public: true }, orderBy: { createdAt: "asc" } })));
  if (!image) {
    throw new IaasError("NOT_FOUND", `image '${ref}' not found`, { hint: "run `iaas image list` to see the images" });
  }
  return image;
}

/** An image the request's project owns (changes and deletes; public images of others are only used). */
export async function findOwnImage(db: Db, ref: string): Promise<Image> {
  const image = await findImage(db, ref);
  if (inProject().projectId !== undefined && image.projectId !== currentProjectId()) {
    throw new IaasError("NOT_FOUND", `image '${ref}' not found in this project`, { hint: "a public image of another project can be used, not changed" });
  }
  return image;
}

export async function findJob(db: Db, id: string): Promise<Job> {
  const job = looksLikeUuid(id) ? await db.job.findFirst({ where: { id: id.toLowerCase(), ...inProject() } }) : null;
  if (!job) throw jobNotFound(id);
  return job;
}

export function jobNotFound(ref: string): IaasError {
  return new IaasError("NOT_FOUND", `job '${ref}' not found`, { hint: "run `iaas job list` to see recent jobs" });
}

export async function findNetwork(db: Db, ref: string): Promise<Network> {
  const network = looksLikeUuid(ref)
    ? await db.network.findFirst({ where: { id: ref.toLowerCase(), ...inProject() } })
    : await db.network.findUnique({ where: { projectId_name: { projectId: currentProjectId(), name: ref } } });
  if (!network) {
    throw new IaasError("NOT_FOUND", `network '${ref}' not found`, { hint: "run `iaas network list` to see the networks, or create it with `iaas network create`" });
  }
  return network;
}
