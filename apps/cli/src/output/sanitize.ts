/**
 * Terminal-safe text. Whatever the CLI prints that others wrote (guest console output, names,
 * labels, descriptions, API error messages, job events) goes through here, so that a guest or
 * another user cannot drive the terminal of whoever runs `iaas`: retitle the window (OSC 0),
 * clear the screen (CSI 2J), move the cursor to forge or hide lines, ring the bell, write to the
 * clipboard (OSC 52), or, on some terminals, report back into the input stream. `-o json` output
 * needs none of this: JSON escapes control characters itself.
 *
 * Control characters are C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F; a terminal in
 * UTF-8 mode may take U+009B for CSI). Two renderings:
 *
 * - Text (sanitizeText, sanitizeLine): every control character stays visible, written as
 *   `cat -v` writes it, so the reader sees that something was there: caret notation for C0 and
 *   DEL (ESC → `^[`, BEL → `^G`, BS → `^H`, CR → `^M`, DEL → `^?`) and `M-` before the caret form
 *   of the C0 character 0x80 below for C1 (CSI U+009B → `M-^[`). The rest of an escape sequence is
 *   plain text then: `ESC ]0;pwned BEL` prints as `^[]0;pwned^G`. sanitizeText keeps newlines and
 *   tabs; sanitizeLine (a table cell, a `key: value` field, a live status line) renders them too.
 *
 * - Console (ConsoleSanitizer, for `iaas vm console`): a guest's serial output is full of colour
 *   and cursor sequences, so whole escape sequences are dropped (CSI, OSC, DCS, SOS, PM, APC and
 *   two-character ESC sequences, in their 7-bit and C1 forms), as are all other control characters
 *   (BEL, BS, NUL …) and a CR not followed by LF; text, newlines (LF and CR LF) and tabs remain.
 */

const ESC = 0x1b;

/** C0 (except as allowed), DEL or C1. */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

/** `cat -v`'s form of a control character: ^[ for ESC, ^? for DEL, M-^[ for U+009B. */
export function caretNotation(code: number): string {
  if (code === 0x7f) return "^?";
  if (code >= 0x80 && code <= 0x9f) return `M-${caretNotation(code - 0x80)}`;
  return `^${String.fromCharCode(code + 0x40)}`;
}

// Every C0 control, DEL and every C1 control; a callback keeps \n and \t where allowed.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

/** Text with its control characters made visible (see above); newlines and tabs are kept. */
export function sanitizeText(text: string): string {
  return text.replace(CONTROLS, (c) => (c === "\n" || c === "\t" ? c : caretNotation(c.charCodeAt(0))));
}

/** One line of output (a table cell, a field value): newlines and tabs are made visible too. */
export function sanitizeLine(text: string): string {
  return text.replace(CONTROLS, (c) => caretNotation(c.charCodeAt(0)));
}

type ConsoleState =
  | "text"
  /** After ESC. */
  | "esc"
  /** ESC, intermediates (0x20–0x2F): until a final byte. */
  | "escIntermediate"
  /** CSI: parameters and intermediates until a final byte (0x40–0x7E). */
  | "csi"
  /** OSC, DCS, SOS, PM, APC: a string until BEL or ST (ESC \ or U+009C). */
  | "string"
  /** ESC inside a string: ST if `\` follows. */
  | "stringEsc"
  /** CR: kept only as part of CR LF. */
  | "cr";

/** Longest escape sequence followed before giving up on it (its text so far is dropped). */
const MAX_SEQUENCE = 4096;

/**
 * Makes a console byte stream terminal-safe as it arrives (see the module comment): chunks may
 * end inside a UTF-8 character, an escape sequence or a CR LF pair, so state carries over.
 */
export class ConsoleSanitizer {
  private readonly decoder = new TextDecoder("utf-8");
  private state: ConsoleState = "text";
  private sequenceLength = 0;

  /** The printable part of `chunk` (with what earlier chunks left pending). */
  push(chunk: Uint8Array | string): string {
    return this.filter(typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true }));
  }

  /** The end of the stream: a pending CR or unfinished sequence is dropped. */
  end(): string {
    const rest = this.filter(this.decoder.decode());
    this.state = "text";
    return rest;
  }

  private filter(text: string): string {
    let out = "";
    for (const ch of text) {
      const code = ch.codePointAt(0) ?? 0;
      out += this.step(ch, code);
    }
    return out;
  }

  private enter(state: ConsoleState): string {
    this.state = state;
    this.sequenceLength = 0;
    return "";
  }

  /** What `ch` adds to the output, given the state it moves out of. */
  private step(ch: string, code: number): string {
    if (this.state !== "text" && this.state !== "cr" && ++this.sequenceLength > MAX_SEQUENCE) {
      // A sequence that never ends: stop swallowing text.
      this.state = "text";
    }
    switch (this.state) {
      case "text":
        return this.text(ch, code);
      case "cr":
        this.state = "text";
        return code === 0x0a ? "\r\n" : this.text(ch, code);
      case "esc":
        if (code === 0x5b) return this.enter("csi"); // [
        if (code === 0x5d || code === 0x50 || code === 0x58 || code === 0x5e || code === 0x5f) return this.enter("string"); // ] P X ^ _
        if (code >= 0x20 && code <= 0x2f) return this.enter("escIntermediate");
        if (code >= 0x30 && code <= 0x7e) return this.enter("text");
        // Not a sequence after all: the ESC goes, the character is taken on its own.
        this.state = "text";
        return this.text(ch, code);
      case "escIntermediate":
        if (code >= 0x20 && code <= 0x2f) return "";
        this.state = "text";
        return code >= 0x30 && code <= 0x7e ? "" : this.text(ch, code);
      case "csi":
        if (code >= 0x20 && code <= 0x3f) return "";
        this.state = "text";
        return code >= 0x40 && code <= 0x7e ? "" : this.text(ch, code);
      case "string":
        if (code === 0x07 || code === 0x9c) return this.enter("text");
        if (code === ESC) this.state = "stringEsc";
        return "";
      case "stringEsc":
        if (code === 0x5c) return this.enter("text"); // ESC \ = ST
        // Another sequence begins: the string is over.
        this.state = "esc";
        return this.step(ch, code);
    }
  }

  private text(ch: string, code: number): string {
    if (code === 0x0a || code === 0x09) return ch;
    if (code === 0x0d) return this.enter("cr");
    if (code === ESC) return this.enter("esc");
    if (code === 0x9b) return this.enter("csi");
    if (code === 0x9d || code === 0x90 || code === 0x98 || code === 0x9e || code === 0x9f) return this.enter("string");
    return isControl(code) ? "" : ch;
  }
}
