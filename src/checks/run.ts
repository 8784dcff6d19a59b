// Several checks at once, and the one JSON shape their report takes (`check --json`).
import { pollCheck, type CheckOutcome, type PollOptions } from '../poll.js';
import type { CheckSpec } from '../recipe/types.js';
import type { AttemptError, AttemptResult } from './types.js';

export interface CheckReport {
  ok: boolean;
  checks: CheckOutcome[];
}

export interface CheckAllOptions extends Omit<PollOptions, 'onAttempt'> {
  onAttempt?: (spec: CheckSpec, n: number, r: AttemptResult) => void;
}

/** Polls every check concurrently; the report lists them in the order given. */
export async function checkAll(specs: CheckSpec[], opts: CheckAllOptions = {}): Promise<CheckReport> {
  const { onAttempt, ...rest } = opts;
  const checks = await Promise.all(
    specs.map((spec) => pollCheck(spec, { ...rest, ...(onAttempt ? { onAttempt: (n: number, r: AttemptResult) => onAttempt(spec, n, r) } : {}) })),
  );
  return { ok: checks.every((c) => c.status === 'ready'), checks };
}

export interface JsonCheck {
  name: string;
  type: string;
  target: string;
  status: 'ready' | 'failed';
  attempts: number;
  elapsed_ms: number;
  error: AttemptError | null;
}

export interface JsonReport {
  ok: boolean;
  checks: JsonCheck[];
}

/** Exactly the documented `--json` document; nothing else leaks into it. */
export function toJsonReport(report: CheckReport): JsonReport {
  return {
    ok: report.ok,
    checks: report.checks.map((c) => ({
      name: c.name,
      type: c.type,
      target: c.target,
      status: c.status,
      attempts: c.attempts,
      elapsed_ms: c.elapsedMs,
      error: c.error ? { code: c.error.code, message: c.error.message } : null,
    })),
  };
}
