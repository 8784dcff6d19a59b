// The worst-case duration of a run: every phase at its own deadline, the rollback included. What `plan` and
// `preflight` print, and what a caller with a timeout of its own (CI, an Ansible async task) must leave room for.
import { DAEMON_DEFAULTS } from '../process/daemon.js';
import { STEP_DEFAULTS } from '../process/step.js';
import type { CheckSpec, HookItemSpec, ResolvedRecipe, ServiceSpec, StartSpec, StepSpec, StopSpec } from '../recipe/types.js';

export interface PhaseBudget {
  phase: string;
  ms: number;
}

export interface WorstCase {
  totalMs: number;
  forwardMs: number;
  rollbackMs: number;
  phases: PhaseBudget[];
  rollback: PhaseBudget[];
}

// a timed-out step's group gets the kill grace before SIGKILL
const stepMs = (s: StepSpec): number => s.timeoutMs + STEP_DEFAULTS.killGraceMs;
// a check never overruns its timeout by more than one attempt
const checkMs = (c: CheckSpec): number => c.timeoutMs + c.attemptTimeoutMs;
const concurrentMs = (checks: CheckSpec[]): number => Math.max(0, ...checks.map(checkMs));
const hooksMs = (items: HookItemSpec[]): number => items.reduce((sum, i) => sum + (i.kind === 'step' ? stepMs(i.step) : checkMs(i.check)), 0);
// a unit's own timeouts are only known live: without ours, systemd's default (90s) plus the margin
const MANAGER_DEFAULT_MS = 95_000;
const stopMs = (svc: ServiceSpec): number => {
  if (svc.kind === 'systemd') return svc.reload ? 0 : (svc.stopTimeoutMs ?? MANAGER_DEFAULT_MS);
  if (svc.kind === 'supervisor') return svc.stopTimeoutMs ?? MANAGER_DEFAULT_MS;
  const s: StopSpec = svc.stop;
  return s.kind === 'run' ? stepMs(s.step) : s.timeoutMs;
};
const startMs = (svc: ServiceSpec): number => {
  if (svc.kind !== 'commands') return svc.startTimeoutMs ?? MANAGER_DEFAULT_MS;
  const s: StartSpec = svc.start;
  return s.kind === 'run' ? stepMs(s.step) : DAEMON_DEFAULTS.settleMs;
};

export function worstCase(recipe: ResolvedRecipe): WorstCase {
  const release = recipe.release;
  const resolveMs = release?.kind === 'command' ? stepMs(release.current) + (release.exists ? stepMs(release.exists) : 0) : 0;
  const activateMs = release?.kind === 'command' ? stepMs(release.activate) : 0;
  const phases: PhaseBudget[] = [
    { phase: 'resolve', ms: resolveMs },
    { phase: 'dependencies', ms: concurrentMs(recipe.dependencies) },
    { phase: 'verify', ms: hooksMs(recipe.verify) + (release?.kind === 'command' && release.exists ? stepMs(release.exists) : 0) },
    { phase: 'before_stop', ms: hooksMs(recipe.hooks.beforeStop) },
    { phase: 'stop', ms: stopMs(recipe.service) },
    { phase: 'activate', ms: activateMs },
    { phase: 'start', ms: startMs(recipe.service) },
    { phase: 'after_start', ms: hooksMs(recipe.hooks.afterStart) },
    { phase: 'gates', ms: concurrentMs(recipe.gates) },
    { phase: 'on_success', ms: hooksMs(recipe.hooks.onSuccess) },
  ];
  const rollback: PhaseBudget[] = recipe.rollback.enabled
    ? [
        { phase: 'rollback_stop', ms: stopMs(recipe.service) },
        { phase: 'rollback_activate', ms: activateMs },
        { phase: 'rollback_steps', ms: recipe.rollback.steps.reduce((sum, s) => sum + stepMs(s), 0) },
        { phase: 'rollback_start', ms: startMs(recipe.service) },
        { phase: 'rollback_gates', ms: concurrentMs(recipe.gates) },
        { phase: 'on_rollback', ms: hooksMs(recipe.hooks.onRollback) },
      ]
    : [];
  // a failed run does not reach on_success
  const forwardMs = phases.reduce((sum, p) => sum + p.ms, 0);
  const rollbackMs = rollback.reduce((sum, p) => sum + p.ms, 0);
  const onSuccess = phases[phases.length - 1]?.ms ?? 0;
  return { totalMs: Math.max(forwardMs, forwardMs - onSuccess + rollbackMs), forwardMs, rollbackMs, phases, rollback };
}
