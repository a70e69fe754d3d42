import parsePrometheusTextFormat from "parse-prometheus-text-format";

/**
 * One scrape, parsed by a real Prometheus text-format parser (which throws on a malformed line),
 * with lookups for tests. The parser folds a histogram's labelled series into one unlabelled
 * sample, so the series are read from a second parse in which histograms and summaries are
 * declared untyped: every `_bucket`, `_sum` and `_count` line is then a series with its labels,
 * as Prometheus stores them.
 */
export class Scrape {
  readonly families: ReturnType<typeof parsePrometheusTextFormat>;
  private readonly series: ReturnType<typeof parsePrometheusTextFormat>;

  constructor(readonly text: string) {
    this.families = parsePrometheusTextFormat(text);
    this.series = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) (histogram|summary)$/gm, "# TYPE $1 untyped"));
  }

  /** The metric family names (histograms once, without _bucket/_sum/_count). */
  names(): Set<string> {
    return new Set(this.families.map((f) => f.name));
  }

  /** Samples of the series `name` (a histogram's: `NAME_count`, `NAME_bucket`...) whose labels include `labels`. */
  private samples(name: string, labels: Record<string, string>) {
    return this.series.filter((f) => f.name === name).flatMap((f) => f.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)));
  }

  /** The sum of a counter's or gauge's samples matching `labels` (0 when none). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples(name, labels).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  }

  /** Whether any sample of `name` matches `labels`. */
  has(name: string, labels: Record<string, string> = {}): boolean {
    return this.samples(name, labels).length > 0;
  }

  /** The summed observation count of a histogram's series matching `labels`. */
  count(name: string, labels: Record<string, string> = {}): number {
    return this.value(`${name}_count`, labels);
  }
}

/** GETs a /metrics URL and parses it; throws on a non-200 answer. */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return new Scrape(await res.text());
}
