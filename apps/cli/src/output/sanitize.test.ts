import { describe, expect, it } from "vitest";
import { caretNotation, ConsoleSanitizer, sanitizeLine, sanitizeText } from "./sanitize.js";

const ESC = "\x1b";
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const hasControl = (s: string) => /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(s);

describe("sanitizeText / sanitizeLine", () => {
  it("makes escape sequences visible in cat -v notation, so they cannot act on the terminal", () => {
    expect(sanitizeText(`${ESC}]0;pwned\x07`)).toBe("^[]0;pwned^G");
    expect(sanitizeText(`${ESC}[2J${ESC}[H`)).toBe("^[[2J^[[H");
    // OSC 52 (write the clipboard), terminated by ST.
    expect(sanitizeText(`${ESC}]52;c;cm0gLXJmIH4=${ESC}\\`)).toBe("^[]52;c;cm0gLXJmIH4=^[\\");
  });

  it("renders every other C0 control, DEL and the C1 controls too", () => {
    expect(sanitizeText("a\bb\rc\0d\x7fe")).toBe("a^Hb^Mc^@d^?e");
    expect(sanitizeText("\u009b31mred\u009d0;t\u0007")).toBe("M-^[31mredM-^]0;t^G");
    expect(caretNotation(0x9b)).toBe("M-^[");
    for (let code = 0; code <= 0x9f; code++) {
      if (code >= 0x20 && code < 0x7f) continue;
      const out = sanitizeLine(String.fromCharCode(code));
      expect(hasControl(out) || out.includes("\n") || out.includes("\t"), `U+${code.toString(16)}`).toBe(false);
    }
  });

  it("keeps newlines and tabs in text, and renders them in a single line", () => {
    expect(sanitizeText("a\n\tb")).toBe("a\n\tb");
    expect(sanitizeLine("a\n\tb")).toBe("a^J^Ib");
  });

  it("leaves ordinary and non-ASCII text alone, and is idempotent", () => {
    const text = "déjà vu — 漢字 ✔ [████░░] 40%";
    expect(sanitizeText(text)).toBe(text);
    const once = sanitizeText(`${ESC}[31mx`);
    expect(sanitizeText(once)).toBe(once);
  });
});

describe("ConsoleSanitizer", () => {
  const clean = (...chunks: (string | Uint8Array)[]) => {
    const s = new ConsoleSanitizer();
    return chunks.map((c) => s.push(c)).join("") + s.end();
  };

  it("drops colour, cursor, title and clipboard sequences and keeps the text and CR LF line ends", () => {
    expect(clean(`[  ${ESC}[0;32mOK${ESC}[0m  ] Started\r\n`)).toBe("[  OK  ] Started\r\n");
    expect(clean(`${ESC}]0;pwned\x07login: `)).toBe("login: ");
    expect(clean(`${ESC}[2J${ESC}[H${ESC}[?25lhidden?\n`)).toBe("hidden?\n");
    expect(clean(`${ESC}]52;c;cm0gLXJmIH4=${ESC}\\after`)).toBe("after");
    expect(clean(`${ESC}P1$r0m${ESC}\\x${ESC}_apc${ESC}\\y`)).toBe("xy");
    expect(clean(`${ESC}c${ESC}(B${ESC}7z`)).toBe("z");
    expect(clean("\u009b2J\u009d0;t\u0007done")).toBe("done");
  });

  it("drops BEL, backspace, NUL, DEL and a CR that does not end a line", () => {
    expect(clean("a\x07b\bc\0d\x7fe")).toBe("abcde");
    expect(clean("progress 10%\rprogress 20%\r\n")).toBe("progress 10%progress 20%\r\n");
    expect(clean("tab\tand\nnewline")).toBe("tab\tand\nnewline");
  });

  it("follows sequences, CR LF pairs and UTF-8 characters split across chunks", () => {
    const bytes = new TextEncoder().encode(`é${ESC}]0;pwned\x07ok\r\n`);
    const chunks = [...bytes].map((b) => Uint8Array.of(b));
    expect(clean(...chunks)).toBe("éok\r\n");
    expect(clean(`${ESC}[`, "2", "J", "x\r", "\n")).toBe("x\r\n");
  });

  it("gives up on a sequence that never ends rather than swallowing the rest of the console", () => {
    const out = clean(`${ESC}]0;`, "x".repeat(5000), "\nvisible\n");
    expect(out).toContain("visible\n");
    expect(hasControl(out)).toBe(false);
  });

  it("never lets a control character through, whatever the bytes", () => {
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256);
    const out = clean(bytes.subarray(0, 1000), bytes.subarray(1000));
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    expect(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(out)).toBe(false);
    expect(/\r(?!\n)/.test(out)).toBe(false);
  });
});
