import type { Request, Response } from "express";

/** Whether the client of a long-lived answer (event stream, console follow, long-poll) is still there. */
export interface ClientWatch {
  /** The client left, or the answer is over (its response closed). Read it after every await. */
  readonly gone: boolean;
  /** Aborted when the client leaves: hang the stream's resources (timers, connections) on it. */
  readonly signal: AbortSignal;
  /** Waits `ms`, or less when the client leaves; the timer never outlives the client. */
  sleep(ms: number): Promise<void>;
}

/**
 * Watches `res` for the client leaving. Call it first thing in a route, before any await: a client
 * that leaves later fires `close`; one that already left (during authentication, or while the
 * route awaited a query) is seen from the response's and socket's state, because Node emits
 * `close` only once.
 */
export function watchClient(req: Request, res: Response): ClientWatch {
  const controller = new AbortController();
  const closedNow = (): boolean => res.closed || res.destroyed || req.socket.destroyed;
  if (closedNow()) controller.abort();
  else res.once("close", () => controller.abort());
  const signal = controller.signal;
  return {
    get gone() {
      if (!signal.aborted && closedNow()) controller.abort();
      return signal.aborted;
    },
    signal,
    sleep(ms: number): Promise<void> {
      return new Promise((resolve) => {
        if (signal.aborted) {
          resolve();
          return;
        }
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
      });
    },
  };
}
