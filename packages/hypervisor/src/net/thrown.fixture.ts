import { IaasError } from "@iaas/contracts";

/** The IaasError `fn` throws (fails the test when it throws nothing or something else). */
export function thrown(fn: () => unknown): IaasError {
  try {
    fn();
  } catch (err) {
    if (err instanceof IaasError) return err;
    throw new Error(`expected an IaasError, got ${String(err)}`, { cause: err });
  }
  throw new Error("expected an IaasError, but nothing was thrown");
}
