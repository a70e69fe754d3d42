import { formatSize, type Image } from "@iaas/contracts";
import { formatFields, formatTable } from "./formatTable.js";

function size(bytes: number | null): string {
  return bytes === null ? "-" : formatSize(bytes);
}

/** `iaas image list`: NAME STATE FORMAT VIRTUAL-SIZE STORED SHA256. */
export function imageTable(images: readonly Image[]): string {
  return formatTable(
    ["NAME", "STATE", "FORMAT", "VIRTUAL-SIZE", "STORED", "SHA256"],
    images.map((image) => [
      image.name,
      image.state,
      image.sourceFormat ?? "-",
      size(image.virtualSize),
      size(image.storedSize),
      image.sha256 === null ? "-" : image.sha256.slice(0, 12),
    ]),
  );
}

/** `iaas image show`. */
export function imageDetails(image: Image): string {
  const fields: [string, string | number | null][] = [
    ["name", image.name],
    ["id", image.id],
    ["state", image.state],
    ["format", image.sourceFormat],
    ["virtual size", size(image.virtualSize)],
    ["stored size", size(image.storedSize)],
    ["sha256", image.sha256],
    ["description", image.description],
    ["used by", image.usedBy.length === 0 ? null : image.usedBy.map((vm) => vm.name).join(", ")],
    ["created", image.createdAt],
    ["updated", image.updatedAt],
  ];
  if (image.uploadUrl !== null) fields.push(["upload url", image.uploadUrl]);
  if (image.lastError !== null) {
    fields.push(["last error", `${image.lastError.message} (${image.lastError.code})`]);
    if (image.lastError.hint !== null) fields.push(["hint", image.lastError.hint]);
  }
  return formatFields(fields);
}
