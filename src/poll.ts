// The one polling policy: initial_delay, attempts every interval (from the start of the previous attempt),
// each bounded by attempt_timeout, until success_threshold consecutive passes, then stable_for of continued
// passes, all inside timeout; cancellable by an AbortSignal at every wait.
//
// Why a small explicit loop and not p-retry 7: p-retry waits its delay after an attempt *ends* (a slow attempt adds
// its own duration to the interval), retries only on rejection, and cannot express "N consecutive passes, then a
// stable window in which one failure ends the wait at once" — the loop below states that policy directly.
import type { LookupAddress } from 'node:dns';
import { loadAttempt } from './checks/registry.js';
import { systemResolver } from './checks/resolve.js';
import type { AttemptError, AttemptFn, AttemptResult, Resolver } from './checks/types.js';
import type { CheckSpec, CheckType } from './recipe/types.js';

export interface CheckOutcome {
  name: string;
  type: CheckType;
  target: string;
  status: 'ready' | 'failed';
  attempts: number;
  elapsedMs: number;
  error: AttemptError | null;
  last: AttemptResult | null;
  cancelled: boolean;
}

/** Where a check stands after an attempt; empty after a failed one. */
export interface AttemptProgress {
  passing?: true;
  /** ms it has kept passing since it reached success_threshold: it is waiting out stable_for */
  stableForMs?: number;
  /** its stable_for, present with stableForMs */
  stableRequiredMs?: number;
}

export interface PollOptions {
  signal?: AbortSignal;
  resolver?: Resolver;
  /** Called after every counted attempt with its number (1-based), its result and where the check stands. */
  onAttempt?: (n: number, r: AttemptResult, progress: AttemptProgress) => void;
  /** One attempt, no initial delay, no threshold or stable window: triage. */
  once?: boolean;
  /** Replaces the registry's attempt function (embedding, tests). */
  attempt?: AttemptFn;
  /** Environment for command checks (the run-time variables), layered over process.env. */
  env?: Record<string, string>;
  /** The state directory, for `recipe:` checks. */
  stateDir?: string;
}

// Cheap probes (a refused connect, a 503) are repeated inside an interval while they fail, so a dependency that
// becomes ready mid-interval is noticed within about interval/5 instead of up to a whole interval later.
// Only for types whose failed probe costs the dependency almost nothing; never for command or database logins.
const QUICK_REPROBE_TYPES: ReadonlySet<CheckType> = new Set(['tcp', 'http']);
// ...and only for the failures that are the dependency's own quick "not yet" (PORT_OPEN is that for a closed
// probe). Never after a DNS failure or a timeout: asking the resolver every few ms is what makes it stop answering.
const QUICK_REPROBE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'HTTP_STATUS', 'PORT_OPEN']);
const QUICK_REPROBES_PER_INTERVAL = 5;
const MIN_QUICK_STEP_MS = 10;
// Only the first seconds of a wait re-probe quickly: that is where restarts and flips happen, and a
// long outage then costs plain interval polling (a 60 s wait ~1 s of CPU instead of ~4 s).
const QUICK_WINDOW_MS = 5_000;
// How long an attempt that ignores its abort signal is given to return its own (more precise) verdict.
const ABORT_GRACE_MS = 25;
// Preallocated abort reasons: a fresh Error per attempt costs a stack capture on every probe.
const ATTEMPT_FINISHED = Object.freeze({ reason: 'attempt finished' });
const ATTEMPT_TIMED_OUT = Object.freeze({ reason: 'attempt_timeout' });
// A check asks about a name at most once per max(interval, this), and never while its last question is pending;
// attempts in between reuse the answer, good or bad. The system's stub resolver caches nothing, and a resolver
// asked ~10 times a second stops answering.
const MIN_LOOKUP_GAP_MS = 1_000;
const CHECK_FINISHED = Object.freeze({ reason: 'check finished' });

export async function pollCheck(spec: CheckSpec, opts: PollOptions = {}): Promise<CheckOutcome> {
  const lookups = createLookups(opts.resolver ?? systemResolver, Math.max(spec.intervalMs, MIN_LOOKUP_GAP_MS));
  try {
    return await pollWith(spec, opts, lookups);
  } finally {
    // a lookup still pending is nobody's any more: cancelled, so it holds neither the resolver nor the process
    lookups.close();
  }
}

async function pollWith(spec: CheckSpec, opts: PollOptions, lookups: Lookups): Promise<CheckOutcome> {
  const startedAt = performance.now();
  const deadline = startedAt + spec.timeoutMs;
  const signal = opts.signal;
  let attempts = 0;
  let last: AttemptResult | null = null;
  let lastFailure: AttemptResult | null = null;
  // The last failure the resolver answered ("no such name"), and the failures that waited on a lookup in vain.
  let lastDnsAnswer: AttemptResult | null = null;
  const dnsSilent = new WeakSet<AttemptResult>();
  // A resolver that said "no such name" and then went quiet: its answer is the cause, the silence a footnote.
  const causeOf = (r: AttemptResult | null): AttemptResult | null => {
    if (!r || !dnsSilent.has(r) || !lastDnsAnswer?.error) return r;
    const silence = `later lookups got no answer within attempt_timeout ${formatDuration(spec.attemptTimeoutMs)}`;
    return { ...lastDnsAnswer, error: { code: lastDnsAnswer.error.code, message: `${lastDnsAnswer.error.message} (${silence})` } };
  };
  const elapsed = (): number => Math.round(performance.now() - startedAt);
  const outcome = (status: 'ready' | 'failed', error: AttemptError | null, cancelled = false): CheckOutcome => ({
    name: spec.name,
    type: spec.type,
    target: spec.target,
    status,
    attempts,
    elapsedMs: elapsed(),
    error,
    last,
    cancelled,
  });
  const cancelledOutcome = (): CheckOutcome =>
    outcome('failed', { code: 'CANCELLED', message: `check "${spec.name}" cancelled after ${formatDuration(elapsed())} (${plural(attempts, 'attempt')})${last?.ok ? `; its last attempt passed (${last.detail})` : causeSuffix(causeOf(lastFailure ?? last))}` }, true);

  let attemptFn: AttemptFn;
  try {
    attemptFn = opts.attempt ?? (await loadAttempt(spec.type));
  } catch (error) {
    return outcome('failed', { code: 'CHECK_UNAVAILABLE', message: `check "${spec.name}": cannot load the ${spec.type} check: ${(error as Error).message}` });
  }
  const probeOnce = async (): Promise<AttemptResult> => {
    const asked = lookups.forAttempt();
    const result = await runAttempt(attemptFn, spec, opts, asked.resolver);
    if (asked.unanswered()) {
      if (!result.ok) dnsSilent.add(result);
    } else {
      // an answer with addresses makes an earlier "no such name" history
      lastDnsAnswer = !result.ok && asked.answeredNo() ? result : null;
    }
    return result;
  };

  if (opts.once) {
    if (signal?.aborted) return cancelledOutcome();
    attempts = 1;
    last = await probeOnce();
    opts.onAttempt?.(1, last, last.ok ? { passing: true } : {});
    if (signal?.aborted) return cancelledOutcome();
    if (last.ok) return outcome('ready', null);
    return outcome('failed', prefixed(spec, `not ready (1 attempt, --once)`, last));
  }

  if (spec.initialDelayMs > 0 && !(await sleep(Math.min(spec.initialDelayMs, deadline - performance.now()), signal))) return cancelledOutcome();

  // drained reads the whole connection table, which on a busy host is not cheap enough to repeat every few ms.
  const quick = QUICK_REPROBE_TYPES.has(spec.type) && !(spec.probe.type === 'tcp' && spec.probe.state === 'drained');
  const quickStep = Math.max(MIN_QUICK_STEP_MS, spec.intervalMs / QUICK_REPROBES_PER_INTERVAL);
  let passes = 0;
  let stableSince: number | null = null;
  for (;;) {
    if (signal?.aborted) return cancelledOutcome();
    const slotStart = performance.now();
    const slotEnd = slotStart + spec.intervalMs;
    attempts += 1;
    let result = (last = await probeOnce());
    // Inside this interval, a fast failure is probed again every quickStep (bounded by the interval and the deadline).
    const quickNow = quick && slotStart - startedAt < QUICK_WINDOW_MS;
    for (let probeStart = slotStart; quickNow && !result.ok && passes === 0 && QUICK_REPROBE_CODES.has(result.error?.code ?? ''); ) {
      lastFailure = result;
      const next = Math.max(probeStart + quickStep, performance.now());
      if (next >= slotEnd || next >= deadline) break;
      if (!(await sleep(next - performance.now(), signal))) return cancelledOutcome();
      probeStart = performance.now();
      result = last = await probeOnce();
    }
    if (signal?.aborted) return cancelledOutcome();
    const now = performance.now();

    if (result.ok) {
      passes += 1;
      if (passes >= spec.successThreshold) stableSince ??= now;
      const stable = stableSince === null ? {} : { stableForMs: Math.round(now - stableSince), stableRequiredMs: spec.stableForMs };
      opts.onAttempt?.(attempts, result, { passing: true, ...stable });
      if (stableSince !== null && now - stableSince >= spec.stableForMs) return outcome('ready', null);
    } else {
      opts.onAttempt?.(attempts, result, {});
      lastFailure = result;
      if (stableSince !== null) {
        const passedAt = formatDuration(Math.round(stableSince - startedAt));
        return outcome('failed', prefixed(spec, `passed at ${passedAt} but failed during stable_for ${formatDuration(spec.stableForMs)} (attempt ${attempts})`, result));
      }
      passes = 0;
    }

    // A slow attempt does not delay the next one further; no attempt starts after the deadline.
    const nextStart = Math.max(slotEnd, now);
    if (nextStart >= deadline) return outcome('failed', timeoutError(spec, attempts, passes, stableSince, startedAt, causeOf(lastFailure ?? last)));
    if (!(await sleep(nextStart - performance.now(), signal))) return cancelledOutcome();
  }
}

function timeoutError(spec: CheckSpec, attempts: number, passes: number, stableSince: number | null, startedAt: number, cause: AttemptResult | null): AttemptError {
  const after = `after ${formatDuration(spec.timeoutMs)} (${plural(attempts, 'attempt')})`;
  if (stableSince !== null) {
    const message = `check "${spec.name}" passed at ${formatDuration(Math.round(stableSince - startedAt))} but timeout ${formatDuration(spec.timeoutMs)} ended before stable_for ${formatDuration(spec.stableForMs)} completed (${plural(attempts, 'attempt')})`;
    return { code: 'STABLE_FOR_INCOMPLETE', message };
  }
  if (passes > 0) {
    const message = `check "${spec.name}" not ready ${after}: only ${passes} of ${spec.successThreshold} consecutive passes${causeSuffix(cause, '; last failure: ')}`;
    return { code: cause?.error?.code ?? 'SUCCESS_THRESHOLD', message };
  }
  return prefixed(spec, `not ready ${after}`, cause);
}

function prefixed(spec: CheckSpec, what: string, cause: AttemptResult | null): AttemptError {
  return { code: cause?.error?.code ?? 'TIMEOUT', message: `check "${spec.name}" ${what}${causeSuffix(cause)}` };
}

function causeSuffix(cause: AttemptResult | null, lead = ': '): string {
  if (!cause) return '';
  if (cause.error) return `${lead}${cause.error.code} ${cause.error.message}`;
  return `${lead}${cause.detail}`;
}

// One attempt under its own deadline. An attempt that ignores its signal is cut off shortly after the deadline.
async function runAttempt(fn: AttemptFn, spec: CheckSpec, opts: PollOptions, resolver: Resolver): Promise<AttemptResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(ATTEMPT_TIMED_OUT), spec.attemptTimeoutMs);
  const onCancel = (): void => controller.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onCancel();
  else opts.signal?.addEventListener('abort', onCancel, { once: true });
  let graceTimer: NodeJS.Timeout | undefined;
  let onAbort = (): void => {};
  const cutOff = new Promise<AttemptResult>((resolve) => {
    onAbort = (): void => {
      graceTimer = setTimeout(() => {
        const message = `attempt did not finish within attempt_timeout ${formatDuration(spec.attemptTimeoutMs)}`;
        resolve({ ok: false, detail: message, error: { code: 'ETIMEDOUT', message } });
      }, ABORT_GRACE_MS);
    };
  });
  if (controller.signal.aborted) onAbort();
  else controller.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const ctx = { signal: controller.signal, timeoutMs: spec.attemptTimeoutMs, resolver, ...(opts.env ? { env: opts.env } : {}), ...(opts.stateDir ? { stateDir: opts.stateDir } : {}) };
    const running = Promise.resolve()
      .then(() => fn(spec.probe, ctx))
      .catch((error: unknown): AttemptResult => {
        const err = error as { code?: unknown; message?: unknown };
        const code = typeof err?.code === 'string' ? err.code : 'ATTEMPT_ERROR';
        const message = typeof err?.message === 'string' ? err.message : String(error);
        return { ok: false, detail: message, error: { code, message } };
      });
    return await Promise.race([running, cutOff]);
  } finally {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    controller.signal.removeEventListener('abort', onAbort);
    opts.signal?.removeEventListener('abort', onCancel);
    // Anything the attempt still holds (a socket, a child) is released now that its verdict is in.
    if (!controller.signal.aborted) controller.abort(ATTEMPT_FINISHED);
  }
}

interface Lookup {
  answer: Promise<LookupAddress[]>;
  startedAt: number;
  settled: boolean;
  /** rejected, or resolved to no address */
  failed: boolean;
}

type Lookups = ReturnType<typeof createLookups>;

/**
 * One check's questions to the resolver: one per name per gapMs at most, shared while pending. A pending question
 * belongs to the check, not to the attempt that asked it (the attempts that follow wait on it too), so an attempt's
 * deadline does not cancel it: it ends with its answer, the resolver's own timeout, or close() at the check's end.
 */
function createLookups(base: Resolver, gapMs: number) {
  const byName = new Map<string, Lookup>();
  const checkDone = new AbortController();
  const ask = (host: string): Lookup => {
    const known = byName.get(host);
    const now = performance.now();
    if (known && (!known.settled || now - known.startedAt < gapMs)) return known;
    const lookup: Lookup = { answer: Promise.resolve().then(() => base(host, { signal: checkDone.signal })), startedAt: now, settled: false, failed: false };
    // Registered first, so the flags are set before any attempt sees the answer (and a rejection is never unhandled).
    lookup.answer.then(
      (list) => {
        lookup.settled = true;
        lookup.failed = list.length === 0;
      },
      () => {
        lookup.settled = true;
        lookup.failed = true;
      },
    );
    byName.set(host, lookup);
    return lookup;
  };
  return {
    /** A resolver for one attempt, and what became of the questions it asked. */
    forAttempt() {
      const asked: Lookup[] = [];
      const resolver: Resolver = (host) => {
        const lookup = ask(host);
        asked.push(lookup);
        return lookup.answer;
      };
      return {
        resolver,
        /** a question this attempt asked was still unanswered when the attempt ended */
        unanswered: (): boolean => asked.some((l) => !l.settled),
        /** the resolver answered a question of this attempt with "no such name" (or no address) */
        answeredNo: (): boolean => asked.some((l) => l.settled && l.failed),
      };
    },
    /** Cancels every question still pending. */
    close(): void {
      checkDone.abort(CHECK_FINISHED);
    },
  };
}

/** Resolves true after ms, or false as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  // Even a zero wait yields to the event loop, so an interval of 0 cannot starve timers and abort events.
  if (ms <= 0) return new Promise((resolve) => setImmediate(() => resolve(!signal?.aborted)));
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** "250ms", "1.5s", "60s", "2m30s" */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
