// Building blocks for check tests: an attempt context and a full CheckSpec with the defaults.
import type { AttemptContext, Resolver } from '../../src/checks/types.js';
import { DEFAULTS, type CheckSpec, type Probe } from '../../src/recipe/types.js';

export function attemptContext(timeoutMs = 5_000, resolver?: Resolver): AttemptContext {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs, ...(resolver ? { resolver } : {}) };
}

export function checkSpec(probe: Probe, timing: Partial<CheckSpec> = {}): CheckSpec {
  return {
    name: 'db',
    type: probe.type,
    target: `${probe.type} db`,
    probe,
    intervalMs: DEFAULTS.intervalMs,
    attemptTimeoutMs: DEFAULTS.attemptTimeoutMs,
    timeoutMs: 10_000,
    initialDelayMs: 0,
    successThreshold: 1,
    stableForMs: 0,
    ...timing,
  };
}
