/**
 * Parses `qemu-img convert -p` output, which arrives as `    (12.34/100%)\r` updates (ending with
 * `(100.00/100%)\r\n`) in chunks that may split an update anywhere. Pure: feed it chunks, it
 * returns the percentages completed so far in each chunk.
 */
export class ConvertProgressParser {
  private pending = "";
  private last = -1;

  /** Returns the percentages (0-100) whose updates end in this chunk, strictly increasing. */
  push(chunk: string): number[] {
    this.pending += chunk;
    const out: number[] = [];
    let sep: number;
    while ((sep = this.pending.search(/[\r\n]/)) >= 0) {
      const line = this.pending.slice(0, sep);
      this.pending = this.pending.slice(sep + 1);
      const p = parseProgressLine(line);
      if (p !== null && p > this.last) {
        this.last = p;
        out.push(p);
      }
    }
    // An update is never this long; drop garbage rather than grow without bound.
    if (this.pending.length > 4096) this.pending = this.pending.slice(-64);
    return out;
  }

  /** The highest percentage seen, or null before the first update. */
  get percent(): number | null {
    return this.last < 0 ? null : this.last;
  }
}

/** `    (12.34/100%)` → 12.34; anything else → null. */
export function parseProgressLine(line: string): number | null {
  const m = /^\s*\((\d{1,3}(?:\.\d+)?)\/100%\)\s*$/.exec(line);
  if (m === null) return null;
  const v = Number(m[1]);
  return v >= 0 && v <= 100 ? v : null;
}
