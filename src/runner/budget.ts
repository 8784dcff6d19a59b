// The worst-case duration of a run: every phase at its own deadline, the rollback included. What `plan` and
// `preflight` print, and what a caller with a timeout of its own (CI, an Ansible async task) must leave room for.
// With `deadline:` it is also the arithmetic of the time budget: the rollback's worst case is reserved first, the
// forward phases count at what they cannot be shortened below, and the waits that can be shortened (dependencies,
// gates, outage_wait) get what is left.
import { DAEMON_DEFAULTS } from '../process/daemon.js';
import { STEP_DEFAULTS } from '../process/step.js';
import { formatMs as formatDuration } from '../recipe/duration.js';
import type { CheckSpec, HookItemSpec, ResolvedRecipe, ServiceSpec, StartSpec, StepSpec, StopSpec } from '../recipe/types.js';
import type { Phase } from '../report/events.js';

export interface PhaseBudget {
  phase: Phase;
  ms: number;
  /** what the phase cannot be shortened below (a deadline cuts the rest); absent = ms */
  minMs?: number;
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
/** the least a passing check takes: its delay, the passes of its threshold, its stable window */
const checkMinMs = (c: CheckSpec): number => c.initialDelayMs + (c.successThreshold - 1) * c.intervalMs + c.stableForMs;
/** a baseline gate, once passed, takes its samples */
const samplesMs = (c: CheckSpec): number => (c.baseline ? c.baseline.samples * Math.max(c.intervalMs, c.attemptTimeoutMs) : 0);
const concurrentMs = (checks: CheckSpec[]): number => Math.max(0, ...checks.map(checkMs));
/** forward gates: a baseline gate also takes its samples (the way back is not compared: the old release is its own baseline) */
const gatesMs = (checks: CheckSpec[]): number => Math.max(0, ...checks.map((c) => checkMs(c) + samplesMs(c)));
const concurrentMinMs = (checks: CheckSpec[]): number => Math.max(0, ...checks.map(checkMinMs));
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
/** how long a server may take to come UP in the load balancer (run.ts gives strategies the same bound) */
export const upTimeoutMs = (recipe: ResolvedRecipe): number => {
  const gates = Math.max(0, ...recipe.gates.map(checkMs));
  return gates > 0 ? gates : 30_000;
};

export function worstCase(recipe: ResolvedRecipe): WorstCase {
  const release = recipe.release;
  const resolveMs = release?.kind === 'command' ? stepMs(release.current) + (release.exists ? stepMs(release.exists) : 0) : 0;
  const activateMs = release?.kind === 'command' ? stepMs(release.activate) : 0;
  const gates: PhaseBudget = { phase: 'gates', ms: gatesMs(recipe.gates), minMs: concurrentMinMs(recipe.gates) };
  const before: PhaseBudget[] = [
    { phase: 'resolve', ms: resolveMs },
    { phase: 'dependencies', ms: concurrentMs(recipe.dependencies), minMs: 0 },
    // the baseline of a gate is measured on the running release in verify
    { phase: 'verify', ms: hooksMs(recipe.verify) + (release?.kind === 'command' && release.exists ? stepMs(release.exists) : 0) + recipe.gates.reduce((sum, g) => sum + samplesMs(g), 0) },
    { phase: 'before_stop', ms: hooksMs(recipe.hooks.beforeStop) },
  ];
  const onSuccess: PhaseBudget = { phase: 'on_success', ms: hooksMs(recipe.hooks.onSuccess) };
  const afterStart: PhaseBudget = { phase: 'after_start', ms: hooksMs(recipe.hooks.afterStart) };
  const strategy = recipe.strategy;
  let phases: PhaseBudget[];
  let rollback: PhaseBudget[];
  if (strategy.kind === 'blue_green') {
    // switching: the new slot comes UP, the old one drains
    const switchMs = upTimeoutMs(recipe) + strategy.drain.timeoutMs;
    const bake: PhaseBudget = { phase: 'bake', ms: strategy.bakeMs > 0 ? strategy.bakeMs + concurrentMs(recipe.gates) : 0, minMs: strategy.bakeMs };
    phases = [...before, { phase: 'prepare', ms: 0 }, { phase: 'start', ms: startMs(recipe.service) }, afterStart, gates, { phase: 'switch', ms: switchMs }, bake, onSuccess];
    rollback = recipe.rollback.enabled
      ? [{ phase: 'switch_back', ms: switchMs }, { phase: 'rollback_stop', ms: stopMs(recipe.service) }, { phase: 'on_rollback', ms: hooksMs(recipe.hooks.onRollback) }]
      : [];
  } else if (strategy.kind === 'rolling') {
    // every instance: drain, stop, activate, start, after_start, gates, back UP
    const n = strategy.instances.length;
    const one = strategy.drain.timeoutMs + stopMs(recipe.service) + activateMs + startMs(recipe.service) + afterStart.ms + upTimeoutMs(recipe);
    const back = n * (one + concurrentMs(recipe.gates));
    const bake: PhaseBudget = { phase: 'bake', ms: strategy.bakeMs > 0 ? strategy.bakeMs + concurrentMs(recipe.gates) : 0, minMs: strategy.bakeMs };
    phases = [...before, { phase: 'rollout', ms: n * (one + gates.ms), minMs: n * (one + (gates.minMs ?? 0)) }, bake, onSuccess];
    rollback = recipe.rollback.enabled
      ? [{ phase: 'rollback_rollout', ms: back }, { phase: 'on_rollback', ms: hooksMs(recipe.hooks.onRollback) }]
      : [];
  } else {
    phases = [...before, { phase: 'stop', ms: stopMs(recipe.service) }, { phase: 'activate', ms: activateMs }, { phase: 'start', ms: startMs(recipe.service) }, afterStart, gates, onSuccess];
    rollback = recipe.rollback.enabled
      ? [
          { phase: 'rollback_stop', ms: stopMs(recipe.service) },
          { phase: 'rollback_activate', ms: activateMs },
          { phase: 'rollback_steps', ms: recipe.rollback.steps.reduce((sum, s) => sum + stepMs(s), 0) },
          { phase: 'rollback_start', ms: startMs(recipe.service) },
          { phase: 'rollback_gates', ms: concurrentMs(recipe.gates) },
          { phase: 'on_rollback', ms: hooksMs(recipe.hooks.onRollback) },
        ]
      : [];
  }
  // a failed run does not reach on_success
  const forwardMs = phases.reduce((sum, p) => sum + p.ms, 0);
  const rollbackMs = rollback.reduce((sum, p) => sum + p.ms, 0);
  return { totalMs: Math.max(forwardMs, forwardMs - onSuccess.ms + rollbackMs), forwardMs, rollbackMs, phases, rollback };
}

/** The time budget of a run with `deadline:`. */
export interface DeadlineBudget {
  deadlineMs: number;
  /** the rollback's worst case, kept back for the way back */
  reserveMs: number;
  /** from before_stop up to the proof, each phase at what it cannot be shortened below */
  fixed: PhaseBudget[];
  fixedMs: number;
  /** spent before this arithmetic was done (0 before the run) */
  elapsedMs: number;
  fits: boolean;
  /** what the waits that can be shortened get, in all: deadline − elapsed − fixed − reserve (negative = does not fit) */
  slackMs: number;
  /** "before_stop 0ms + stop 30.5s + … + rollback reserve 1m 5s = 2m 10s; deadline 2m" */
  arithmetic: string;
}

/** The phases from the first one that prepares the restart (before_stop) to the proof (the last before on_success). */
const FIXED_FROM: Phase = 'before_stop';

export function deadlineBudget(recipe: ResolvedRecipe, elapsedMs = 0, w: WorstCase = worstCase(recipe)): DeadlineBudget | null {
  if (recipe.deadlineMs === null) return null;
  const from = w.phases.findIndex((p) => p.phase === FIXED_FROM);
  const fixed = w.phases
    .slice(from, -1)
    .map((p) => ({ phase: p.phase, ms: p.minMs ?? p.ms }))
    .filter((p) => p.ms > 0);
  const fixedMs = fixed.reduce((sum, p) => sum + p.ms, 0);
  const reserveMs = w.rollbackMs;
  const slackMs = recipe.deadlineMs - elapsedMs - fixedMs - reserveMs;
  const terms = [
    ...(elapsedMs > 0 ? [`${formatDuration(elapsedMs)} spent`] : []),
    ...fixed.map((p) => `${p.phase.replace(/_/g, ' ')} ${formatDuration(p.ms)}`),
    `rollback reserve ${formatDuration(reserveMs)}`,
  ];
  const need = elapsedMs + fixedMs + reserveMs;
  const arithmetic = `${terms.join(' + ')} = ${formatDuration(need)} ${slackMs >= 0 ? '≤' : '>'} deadline ${formatDuration(recipe.deadlineMs)}`;
  return { deadlineMs: recipe.deadlineMs, reserveMs, fixed, fixedMs, elapsedMs, fits: slackMs >= 0, slackMs, arithmetic };
}
