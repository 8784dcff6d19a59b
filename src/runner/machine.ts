// The restart as a pure state machine: next(state, event) decides, run.ts alone acts.
import type { Outcome, Phase } from '../report/events.js';

export type MachineEvent =
  | { kind: 'ok' }
  | { kind: 'failed'; reason: string }
  | { kind: 'interrupted'; signal: string }
  /** a second interrupt during a rollback: stop at once */
  | { kind: 'abandon'; signal: string }
  /** a failure that must not roll back (on_dependency_outage: stop): exit 3, the new release left running */
  | { kind: 'halt'; reason: string };

/** The phases a strategy runs, and its ways back. */
export interface PhaseSequence {
  forward: readonly Phase[];
  /** the way back when a touching phase fails */
  rollback: readonly Phase[];
  /** where the way back differs by the phase that failed (blue/green: after the switch, switch back first) */
  rollbackFor?: Partial<Record<Phase, readonly Phase[]>>;
  /** the first phase that touches anything: everything before it fails with exit 1 */
  firstTouching: Phase;
  /** the old release keeps running beside the new one (blue/green): going back is possible even to the same release */
  keepsOld?: boolean;
}

export interface MachineState {
  phase: Phase;
  sequence: PhaseSequence;
  /** the rollback being run, once one started */
  activeRollback: readonly Phase[];
  /** rollback enabled, a previous release exists and differs from the target */
  canRollBack: boolean;
  /** no previous release: a failure stops what was started (when rollback is enabled) */
  firstRun: boolean;
  rollbackEnabled: boolean;
  /** the failure that ended the forward path (or the rollback), in order */
  failures: Array<{ phase: Phase; reason: string }>;
  /** phases whose failure is only a warning */
  warnings: Array<{ phase: Phase; reason: string }>;
  /** set once a rollback has seen one interrupt (the next one abandons it) */
  interruptedDuringRollback: boolean;
  exit: { code: 0 | 1 | 2 | 3; outcome: Outcome } | null;
}

export const FORWARD: readonly Phase[] = ['resolve', 'dependencies', 'verify', 'before_stop', 'stop', 'activate', 'start', 'after_start', 'gates', 'on_success'];
export const ROLLBACK: readonly Phase[] = ['rollback_stop', 'rollback_activate', 'rollback_steps', 'rollback_start', 'rollback_gates', 'on_rollback'];
export const IN_PLACE: PhaseSequence = { forward: FORWARD, rollback: ROLLBACK, firstTouching: 'stop' };

const beforeTouch = (s: PhaseSequence, phase: Phase): boolean => {
  const i = s.forward.indexOf(phase);
  return i >= 0 && i < s.forward.indexOf(s.firstTouching);
};
const touching = (s: PhaseSequence, phase: Phase): boolean => {
  const i = s.forward.indexOf(phase);
  return i >= s.forward.indexOf(s.firstTouching) && phase !== 'on_success';
};

export function initialState(opts: { previous: string | null; target: string | null; rollbackEnabled: boolean; sequence?: PhaseSequence }): MachineState {
  const sequence = opts.sequence ?? IN_PLACE;
  return {
    phase: 'resolve',
    sequence,
    activeRollback: sequence.rollback,
    canRollBack: opts.rollbackEnabled && opts.previous !== null && (sequence.keepsOld === true || opts.previous !== opts.target),
    firstRun: opts.previous === null,
    rollbackEnabled: opts.rollbackEnabled,
    failures: [],
    warnings: [],
    interruptedDuringRollback: false,
    exit: null,
  };
}

/** Once the release is resolved, what rollback means is known. */
export function withReleases(state: MachineState, previous: string | null, target: string | null): MachineState {
  return { ...state, canRollBack: state.rollbackEnabled && previous !== null && (state.sequence.keepsOld === true || previous !== target), firstRun: previous === null };
}

function after(list: readonly Phase[], phase: Phase): Phase | null {
  const i = list.indexOf(phase);
  return i >= 0 && i + 1 < list.length ? (list[i + 1] as Phase) : null;
}

function done(state: MachineState, code: 0 | 1 | 2 | 3): MachineState {
  const outcome: Outcome = code === 0 ? 'succeeded' : code === 1 ? 'aborted' : code === 2 ? 'rolled_back' : 'failed';
  return { ...state, phase: 'done', exit: { code, outcome } };
}

function reasonOf(event: MachineEvent): string {
  if (event.kind === 'failed' || event.kind === 'halt') return event.reason;
  if (event.kind === 'interrupted' || event.kind === 'abandon') return `interrupted by ${event.signal}`;
  return '';
}

export function next(state: MachineState, event: MachineEvent): MachineState {
  if (state.exit) return state;
  const { phase } = state;

  if (event.kind === 'ok') {
    if (phase === 'on_success') return done(state, 0);
    if (phase === 'on_rollback') return done(state, 2);
    if (phase === 'cleanup_stop') return done(state, 3);
    const back = state.activeRollback.includes(phase) ? after(state.activeRollback, phase) : null;
    if (back) return { ...state, phase: back };
    const forward = after(state.sequence.forward, phase);
    if (forward) return { ...state, phase: forward };
    return done(state, 3);
  }

  const failure = { phase, reason: reasonOf(event) };
  if (event.kind === 'halt') return done({ ...state, failures: [...state.failures, failure] }, 3);

  // hooks after the decisive proof only warn: the release is already proven (or rolled back)
  if (phase === 'on_success' && event.kind === 'failed') return done({ ...state, warnings: [...state.warnings, failure] }, 0);
  if (phase === 'on_rollback' && event.kind === 'failed') return done({ ...state, warnings: [...state.warnings, failure] }, 2);

  const rollingBack = state.phase !== 'resolve' && state.activeRollback.includes(phase) && !state.sequence.forward.includes(phase);
  if (!rollingBack && beforeTouch(state.sequence, phase)) return done({ ...state, failures: [...state.failures, failure] }, 1);

  if (!rollingBack && (touching(state.sequence, phase) || phase === 'on_success')) {
    const failed = { ...state, failures: [...state.failures, failure] };
    const way = state.sequence.rollbackFor?.[phase] ?? state.sequence.rollback;
    if (state.canRollBack && way[0]) return { ...failed, activeRollback: way, phase: way[0] };
    if (state.firstRun && state.rollbackEnabled) return { ...failed, phase: 'cleanup_stop' };
    return done(failed, 3);
  }

  if (rollingBack || phase === 'on_rollback') {
    // a rollback never triggers another rollback
    if (event.kind === 'interrupted' && !state.interruptedDuringRollback) return { ...state, interruptedDuringRollback: true };
    return done({ ...state, failures: [...state.failures, failure] }, 3);
  }

  // cleanup_stop and anything else: nothing more to try
  return done({ ...state, failures: [...state.failures, failure] }, 3);
}
