import { formatSize, type Snapshot } from "@iaas/contracts";
import { formatAge, truncate } from "./format.js";
import { formatTable } from "./formatTable.js";

/** Widest DESCRIPTION the table shows (-o json has all of it). */
const DESCRIPTION_WIDTH = 60;

/** A description on one line of a table: whitespace runs (newlines too) as one blank, cut to a width. */
function descriptionCell(description: string | null): string {
  const flat = (description ?? "").replace(/\s+/g, " ").trim();
  return flat === "" ? "-" : truncate(flat, DESCRIPTION_WIDTH);
}

/** `iaas vm snapshot list`: NAME KIND STATE VM-STATE SIZE CREATED DESCRIPTION (SIZE: the saved RAM and device state). */
export function snapshotTable(snapshots: readonly Snapshot[], now: Date): string {
  return formatTable(
    ["NAME", "KIND", "STATE", "VM-STATE", "SIZE", "CREATED", "DESCRIPTION"],
    snapshots.map((s) => [
      s.name,
      s.kind,
      s.state,
      s.vmState,
      s.sizeBytes === null ? "-" : formatSize(s.sizeBytes),
      formatAge(s.createdAt, now),
      descriptionCell(s.description),
    ]),
  );
}
