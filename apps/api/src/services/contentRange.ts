import { IaasError } from "@iaas/contracts";

/** Parses `Content-Range: bytes START-END/TOTAL` (END inclusive). */
export function parseContentRange(header: string): { start: number; end: number; total: number } {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  const bad = () =>
    new IaasError("VALIDATION_FAILED", `bad Content-Range '${header}'`, { hint: "send `Content-Range: bytes START-END/TOTAL`, END inclusive" });
  if (!m) throw bad();
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!Number.isSafeInteger(total) || start > end || end >= total) throw bad();
  return { start, end, total };
}
