// Baseline gates: "new no worse than old". The running release is measured with a gate's own probe before
// anything is stopped; after the gate passed on the new release, the same number of samples decides whether the
// new one is within the factor (p90 latency) and the margin (error rate) of the old one.
import { formatDuration, pollCheck } from '../poll.js';
import type { Resolver } from '../checks/types.js';
import type { BaselineSpec, CheckSpec } from '../recipe/types.js';

/** One release measured by one gate's probe. */
export interface SampleSet {
  samples: number;
  /** attempts that passed */
  ok: number;
  /** p90 of the passed attempts' latency (nearest rank), null when none passed */
  p90Ms: number | null;
  /** failed / samples */
  errorRate: number;
  /** the first failure's message, for the reason */
  firstError: string | null;
}

export interface SampleOptions {
  signal: AbortSignal;
  env: Record<string, string>;
  resolver?: Resolver;
  /** told after each attempt (for live progress) */
  onSample?: (n: number) => void;
}

/** Nearest-rank percentile (p in 0..100) of values, null for none. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

/**
 * `samples` single attempts, one every interval (start to start), each bounded by attempt_timeout.
 * An aborted signal ends the measure early: what was measured so far is returned.
 */
export async function measure(check: CheckSpec, samples: number, opts: SampleOptions): Promise<SampleSet> {
  const latencies: number[] = [];
  let failed = 0;
  let firstError: string | null = null;
  let taken = 0;
  for (let i = 0; i < samples && !opts.signal.aborted; i++) {
    const started = performance.now();
    const outcome = await pollCheck(check, { once: true, signal: opts.signal, env: opts.env, ...(opts.resolver ? { resolver: opts.resolver } : {}) });
    if (outcome.cancelled) break;
    const took = performance.now() - started;
    taken++;
    if (outcome.status === 'ready') latencies.push(took);
    else {
      failed++;
      firstError ??= outcome.error?.message ?? 'failed';
    }
    opts.onSample?.(taken);
    const wait = check.intervalMs - (performance.now() - started);
    if (i + 1 < samples && wait > 0 && !(await sleep(wait, opts.signal))) break;
  }
  const p90 = percentile(latencies, 90);
  return { samples: taken, ok: latencies.length, p90Ms: p90 === null ? null : Math.round(p90 * 10) / 10, errorRate: taken === 0 ? 0 : failed / taken, firstError };
}

export interface Verdict {
  ok: boolean;
  /** "p90 152ms vs 50ms before (limit 80ms); errors 0/20 vs 0/20 (limit 1%)" */
  detail: string;
  /** why it failed, naming the gate and both figures; null when ok */
  reason: string | null;
  /** what could not be compared (a baseline without enough answers) */
  notes: string[];
}

const pct = (rate: number): string => `${Math.round(rate * 1000) / 10}%`;
const msText = (v: number): string => (v < 10 ? `${Math.round(v * 10) / 10}ms` : formatDuration(Math.round(v)));

/** The new release against the old one, by the gate's baseline rules. */
export function compare(gate: string, spec: BaselineSpec, before: SampleSet, after: SampleSet, previousRelease: string | null): Verdict {
  const old = previousRelease ? `release ${previousRelease}` : 'the release before';
  const parts: string[] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  if (spec.latencyP90Factor !== null) {
    // a p90 from fewer than half the samples says little about the old release
    if (before.p90Ms === null || before.ok < Math.ceil(before.samples / 2)) {
      notes.push(`latency not compared: ${old} answered only ${before.ok} of ${before.samples} baseline samples`);
    } else if (after.p90Ms === null) {
      failures.push(`no sample passed (${after.firstError ?? 'all failed'})`);
    } else {
      const limit = before.p90Ms * spec.latencyP90Factor + spec.latencySlackMs;
      parts.push(`p90 ${msText(after.p90Ms)} vs ${msText(before.p90Ms)} before (limit ${spec.latencyP90Factor}× + ${msText(spec.latencySlackMs)} = ${msText(limit)})`);
      if (after.p90Ms > limit) {
        const ratio = before.p90Ms > 0 ? ` is ${(after.p90Ms / before.p90Ms).toFixed(1)}×` : ' is above';
        failures.push(`p90 latency ${msText(after.p90Ms)}${ratio} ${old}'s ${msText(before.p90Ms)} (limit ${spec.latencyP90Factor}×, ${msText(limit)})`);
      }
    }
  }
  if (spec.errorRateMargin !== null) {
    const limit = before.errorRate + spec.errorRateMargin;
    const afterErrors = after.samples - after.ok;
    const beforeErrors = before.samples - before.ok;
    parts.push(`errors ${afterErrors}/${after.samples} vs ${beforeErrors}/${before.samples} before (limit ${pct(limit)})`);
    if (after.errorRate > limit + 1e-9) {
      failures.push(`error rate ${pct(after.errorRate)} (${afterErrors} of ${after.samples}) against ${old}'s ${pct(before.errorRate)} (limit +${pct(spec.errorRateMargin)})${after.firstError ? `; first error: ${after.firstError}` : ''}`);
    }
  }
  const detail = parts.join('; ');
  if (failures.length === 0) return { ok: true, detail, reason: null, notes };
  return { ok: false, detail, reason: `gate "${gate}": the new release is worse than ${old}: ${failures.join('; ')}`, notes };
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
