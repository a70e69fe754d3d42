import { formatSize, type Image } from "@iaas/contracts";
import { formatPartOf } from "./format.js";
import { formatFields, formatTable } from "./formatTable.js";

function size(bytes: number | null): string {
  return bytes === null ? "-" : formatSize(bytes);
}

/** "url https://…", "path /srv/import/x.qcow2", "upload". */
export function originText(image: Pick<Image, "origin">): string | null {
  if (image.origin === null) return null;
  return image.origin.location === null ? image.origin.type : `${image.origin.type} ${image.origin.location}`;
}

/** "1.5 GiB of 3 GiB (50%)" for an upload under way; null otherwise. */
function uploadText(image: Image): string | null {
  if (image.upload === null) return null;
  const { offset, length } = image.upload;
  return length === null ? `${formatSize(offset)} received` : `${formatPartOf(offset, length)} received`;
}

/** `iaas image list`: NAME STATE FORMAT ORIGIN VIRTUAL-SIZE STORED SHA256. */
export function imageTable(images: readonly Image[]): string {
  return formatTable(
    ["NAME", "STATE", "FORMAT", "ORIGIN", "VIRTUAL-SIZE", "STORED", "SHA256"],
    images.map((image) => [
      image.name,
      image.state,
      image.sourceFormat ?? "-",
      image.origin?.type ?? "-",
      size(image.virtualSize),
      size(image.storedSize),
      image.sha256 === null ? "-" : image.sha256.slice(0, 12),
    ]),
  );
}

/** `iaas image show`. */
export function imageDetails(image: Image): string {
  const labels = Object.entries(image.labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value}`);
  const fields: [string, string | number | null][] = [
    ["name", image.name],
    ["id", image.id],
    ["state", image.state],
    ["origin", originText(image)],
    ["format of origin", image.sourceFormat],
    ["compression", image.compression],
    ["virtual size", size(image.virtualSize)],
    ["stored size", `${size(image.storedSize)}${image.storedSize === null ? "" : " (qcow2)"}`],
    ["sha256", image.sha256],
    ["stored sha256", image.storedSha256],
    ["file checked", image.checkedAt],
    ["labels", labels.length === 0 ? null : labels.join(", ")],
    ["description", image.description],
    ["used by", image.usedBy.length === 0 ? null : image.usedBy.map((vm) => vm.name).join(", ")],
    ["created", image.createdAt],
    ["updated", image.updatedAt],
  ];
  const upload = uploadText(image);
  if (upload !== null) fields.push(["upload", upload]);
  if (image.uploadUrl !== null) fields.push(["upload url", image.uploadUrl]);
  if (image.lastError !== null) {
    fields.push(["last error", `${image.lastError.message} (${image.lastError.code})`]);
    if (image.lastError.hint !== null) fields.push(["hint", image.lastError.hint]);
  }
  return formatFields(fields);
}
