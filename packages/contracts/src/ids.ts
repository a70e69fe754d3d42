const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `ref` has the form of a UUID (so it is looked up as an id, not a name). */
export function looksLikeUuid(ref: string): boolean {
  return UUID_RE.test(ref);
}
