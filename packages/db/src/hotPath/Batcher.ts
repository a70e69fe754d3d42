/**
 * Groups concurrent calls of one statement into one round trip, without a timer: a call made while
 * the database is idle goes out at once (after the current tick, so calls made in the same tick
 * share it); calls made while `maxInFlight` batches are out wait and leave together as the next
 * batch when one comes back. Under load the batches grow; alone, a call pays nothing extra.
 *
 * `run` answers one result per input, in order: a value, or an Error for that input alone. When
 * `run` throws for a batch of several, each input is run again alone, so every caller gets its
 * own result or its own error (one bad row does not fail its neighbours) — except when
 * `isShared(err)` says the error concerns everyone (the database is unreachable): then all get it.
 */
export class Batcher<I, O> {
  private waiting: Array<{ input: I; resolve: (value: O) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (inputs: I[]) => Promise<Array<O | Error>>,
    private readonly options: { maxInFlight?: number; maxBatch?: number; isShared?: (err: unknown) => boolean } = {},
  ) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.drain();
        });
      }
    });
  }

  private drain(): void {
    const maxInFlight = this.options.maxInFlight ?? 2;
    const maxBatch = this.options.maxBatch ?? 256;
    while (this.inFlight < maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, maxBatch);
      this.inFlight++;
      void this.settle(batch).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }

  private async settle(batch: Array<{ input: I; resolve: (value: O) => void; reject: (err: unknown) => void }>): Promise<void> {
    let results: Array<O | Error>;
    try {
      results = await this.run(batch.map((b) => b.input));
    } catch (err) {
      if (batch.length === 1 || this.options.isShared?.(err)) {
        for (const b of batch) b.reject(err);
        return;
      }
      // One input spoiled the statement (a constraint, a bad value): find out whose, one by one.
      await Promise.all(batch.map((b) => this.settle([b])));
      return;
    }
    batch.forEach((b, i) => {
      const result = results[i];
      if (result instanceof Error) b.reject(result);
      else if (result === undefined) b.reject(new Error("the batched statement returned fewer results than inputs"));
      else b.resolve(result);
    });
  }
}
