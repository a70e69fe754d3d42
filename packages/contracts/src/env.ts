import type { z } from "zod";

/** A configuration error that names each bad variable, one per line. */
export function configError(lines: string[]): Error {
  return new Error(`invalid configuration:\n${lines.map((l) => `  ${l}`).join("\n")}`);
}

/** Parses an app's environment with its zod schema (in main(), not at import); throws configError. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw configError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  return parsed.data;
}
