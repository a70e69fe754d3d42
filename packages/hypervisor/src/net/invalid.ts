import { IaasError } from "@iaas/contracts";

/** A VALIDATION_FAILED error: input that can never succeed, so it is not retryable. */
export function invalid(message: string, hint: string, details: Record<string, unknown> = {}): IaasError {
  return new IaasError("VALIDATION_FAILED", message, { hint, retryable: false, details });
}

/** `value` as it may appear inside an error message: quoted, shortened, control characters escaped. */
export function shown(value: unknown): string {
  const s = typeof value === "string" ? value : String(value);
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(cut);
}
