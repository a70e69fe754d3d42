import { describe, expect, it } from "vitest";
import { usageError } from "../CliError.js";
import { runIaas } from "../testing/runIaas.js";
import { FakeWriter } from "../testing/FakeWriter.js";
import { colourEnabled } from "./colour.js";
import { Output } from "./Output.js";

const ESC = "\x1b";

describe("colour", () => {
  it("is on only for a terminal without NO_COLOR (empty NO_COLOR does not count) and not for TERM=dumb", () => {
    const tty = new FakeWriter(true);
    expect(colourEnabled(tty, {})).toBe(true);
    expect(colourEnabled(tty, { NO_COLOR: "1" })).toBe(false);
    expect(colourEnabled(tty, { NO_COLOR: "" })).toBe(true);
    expect(colourEnabled(tty, { TERM: "dumb" })).toBe(false);
    expect(colourEnabled(new FakeWriter(false), {})).toBe(false);
  });

  it("colours the error and hint labels only when asked", () => {
    const plain = new FakeWriter(true);
    new Output(new FakeWriter(), plain, "table").error(usageError("bad", "do this"));
    expect(plain.text).toBe("error: bad\nhint: do this\n");
    const coloured = new FakeWriter(true);
    new Output(new FakeWriter(), coloured, "table", undefined, true).error(usageError("bad", "do this"));
    expect(coloured.text).toBe(`${ESC}[31merror:${ESC}[0m bad\n${ESC}[33mhint:${ESC}[0m do this\n`);
  });

  it("iaas prints no escape sequence when stderr is not a terminal or NO_COLOR is set", async () => {
    const piped = await runIaas(["vm", "list", "--limit", "0"], "http://127.0.0.1:9");
    expect(piped.code).toBe(2);
    expect(piped.stderr).not.toContain(ESC);
    const noColour = await runIaas(["--context", "nope", "vm", "list"], "http://127.0.0.1:9", { tty: true, env: { NO_COLOR: "1" } });
    expect(noColour.code).toBe(2);
    expect(noColour.stderr).toContain("error: context 'nope'");
    expect(noColour.stderr).not.toContain(ESC);
    const terminal = await runIaas(["--context", "nope", "vm", "list"], "http://127.0.0.1:9", { tty: true });
    expect(terminal.stderr).toContain(`${ESC}[31merror:${ESC}[0m context 'nope'`);
  });
});
