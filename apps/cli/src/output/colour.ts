import type { Writer } from "./Output.js";

/**
 * Whether to colour what goes to `stream`: only a terminal, and not when NO_COLOR is set to
 * anything but the empty string (https://no-color.org) or TERM is "dumb".
 */
export function colourEnabled(stream: Writer, env: Readonly<Record<string, string | undefined>>): boolean {
  if (stream.isTTY !== true) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  return env.TERM !== "dumb";
}

const CODES = { red: "31", yellow: "33", bold: "1" } as const;

/** `text` in an SGR colour when `enabled`, as it is otherwise. */
export function paint(enabled: boolean, colour: keyof typeof CODES, text: string): string {
  return enabled ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
}
