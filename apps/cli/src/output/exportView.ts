import { formatSize, type Export } from "@iaas/contracts";
import { formatAge, shortId } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

/** "qcow2 (compressed)". */
function formatText(exp: Pick<Export, "format" | "compressed">): string {
  return exp.compressed ? `${exp.format} (compressed)` : exp.format;
}

/** `iaas export list`: ID STATE SOURCE FORMAT SIZE EXPIRES CREATED. */
export function exportTable(exports: readonly Export[], now: Date): string {
  return formatTable(
    ["ID", "STATE", "SOURCE", "FORMAT", "SIZE", "EXPIRES", "CREATED"],
    exports.map((exp) => [
      shortId(exp.id),
      exp.state,
      `${exp.source.type} ${exp.source.name}`,
      formatText(exp),
      exp.sizeBytes === null ? "-" : formatSize(exp.sizeBytes),
      exp.expiresAt === null ? "-" : formatAge(exp.expiresAt, now),
      formatAge(exp.createdAt, now),
    ]),
  );
}

/** `iaas export show`. */
export function exportDetails(exp: Export): string {
  return formatFields([
    ["id", exp.id],
    ["state", exp.state],
    ["source", `${exp.source.type} ${exp.source.name} (${exp.source.id})`],
    ["format", formatText(exp)],
    ["size", exp.sizeBytes === null ? null : `${formatSize(exp.sizeBytes)} (${exp.sizeBytes} bytes)`],
    ["sha256", exp.sha256],
    ["download url", exp.downloadUrl],
    ["expires", exp.expiresAt],
    ["job", exp.jobId],
    ["created", exp.createdAt],
  ]);
}
