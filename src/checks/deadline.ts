// What every database check shares: one attempt raced against its deadline and the caller's signal.
// Either one destroys the connection's sockets at once, so a driver that ignores cancellation cannot hang
// the attempt, and the report says how far the attempt got ("while waiting for the startup handshake").
import type { AttemptContext, AttemptError } from './types.js';

export type Raced<T> = { outcome: 'done'; value: T } | { outcome: 'failed'; error: unknown } | { outcome: 'aborted'; elapsedMs: number };

/** Run `work` until it settles or the attempt is over; `destroy` releases every socket when it is. */
export async function raceDeadline<T>(ctx: AttemptContext, destroy: () => void, work: Promise<T>): Promise<Raced<T>> {
  const started = Date.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), ctx.timeoutMs);
  const onAbort = (): void => deadline.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const aborted = new Promise<'aborted'>((resolve) => {
    deadline.signal.addEventListener(
      'abort',
      () => {
        destroy();
        resolve('aborted');
      },
      { once: true },
    );
  });
  // The losing side of the race must not become an unhandled rejection.
  work.catch(() => undefined);
  try {
    const outcome = await Promise.race([work.then((value) => ({ value })), aborted]);
    if (outcome === 'aborted') return { outcome: 'aborted', elapsedMs: Date.now() - started };
    return { outcome: 'done', value: outcome.value };
  } catch (error) {
    // a rejection caused by our own destroy() is the deadline's doing, not the server's
    if (deadline.signal.aborted) return { outcome: 'aborted', elapsedMs: Date.now() - started };
    return { outcome: 'failed', error };
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

/** Timed out (the attempt's own deadline) or cancelled early by the caller's signal. */
export function abortError(timeoutMs: number, elapsedMs: number, stage: string): AttemptError {
  // The caller's signal may fire a hair before our own timer at the same deadline; that is still a timeout.
  if (elapsedMs >= timeoutMs - 10) return { code: 'ETIMEDOUT', message: `no answer within ${timeoutMs}ms (while ${stage})` };
  return { code: 'ABORTED', message: `attempt cancelled after ${elapsedMs}ms (while ${stage})` };
}

/** A driver error's code, looking inside AggregateError (a name with several addresses). */
export function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: unknown[] };
  if (typeof e?.code === 'string') return e.code;
  if (Array.isArray(e?.errors) && e.errors.length > 0) return errorCode(e.errors[0]);
  return undefined;
}
