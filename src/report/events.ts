// Everything a run reports is one of these events. Renderers are mapped types over `kind`,
// so a new event does not compile until every output knows how to show it.

export type Phase =
  | 'load'
  | 'lock'
  | 'resolve'
  | 'dependencies'
  | 'verify'
  | 'before_stop'
  | 'prepare'
  | 'stop'
  | 'activate'
  | 'start'
  | 'after_start'
  | 'gates'
  | 'switch'
  | 'converge'
  | 'rollout'
  | 'bake'
  | 'on_success'
  | 'switch_back'
  | 'rollback_rollout'
  | 'rollback_stop'
  | 'rollback_activate'
  | 'rollback_steps'
  | 'rollback_start'
  | 'rollback_gates'
  | 'on_rollback'
  | 'cleanup_stop'
  | 'recover_kill'
  | 'done';

export type Outcome = 'succeeded' | 'rolled_back' | 'failed' | 'aborted';

export interface TimelineEntry {
  phase: Phase;
  /** ms from the run's start */
  startMs: number;
  durationMs: number;
  result: 'ok' | 'failed' | 'skipped' | 'interrupted';
  detail?: string;
}

export interface CheckOutcomeSummary {
  name: string;
  type: string;
  target: string;
  /** cancelled: a sibling gate failed first (or the service died), so this one was stopped early */
  status: 'ready' | 'failed' | 'cancelled';
  attempts: number;
  elapsedMs: number;
  error: { code: string; message: string } | null;
}

export interface Summary {
  runId: string;
  recipe: string;
  outcome: Outcome;
  exitCode: number;
  /** "reason – action", e.g. "gate healthz failed after 30s – rolled back to release v2, healthy" */
  description: string;
  reason: string;
  action: string;
  previousRelease: string | null;
  targetRelease: string | null;
  startedAt: string;
  durationMs: number;
  timeline: TimelineEntry[];
  journal: string;
  warnings: string[];
  /** What is running and what to check first, for exit 3. */
  leftState?: string[];
  evidence?: string;
  /** baseline gates: the release before and the new one, side by side */
  baselines?: BaselineFigures[];
  /** with deadline: the time budget and whether a wait was cut to keep the rollback's reserve */
  deadline?: { deadlineMs: number; reserveMs: number; cut: string | null };
}

export interface BaselineFigures {
  gate: string;
  samples: number;
  /** the running release, measured before stop (blue/green: the live slot) */
  before: { release: string | null; ok: number; samples: number; p90Ms: number | null; errorRate: number } | null;
  /** the new release, measured after its gate passed; null when it never got that far */
  after: { release: string | null; ok: number; samples: number; p90Ms: number | null; errorRate: number } | null;
  /** "p90 57ms vs 52ms before (limit …); errors 0/20 vs 0/20 before (limit 1%)", or why nothing was compared */
  detail: string;
  verdict: 'passed' | 'failed' | 'not_compared';
}

export type RunEvent =
  | { kind: 'run_started'; phase: Phase; recipe: string; requestedRelease: string | null; host: string; journal: string; userReason?: string; mode: 'run' | 'recover' }
  | { kind: 'releases_resolved'; phase: 'resolve'; previousRelease: string | null; targetRelease: string | null }
  | { kind: 'phase_started'; phase: Phase; detail?: string }
  | { kind: 'phase_finished'; phase: Phase; ok: boolean; durationMs: number; detail?: string }
  | { kind: 'step_started'; phase: Phase; step: string; pid?: number; pgid?: number }
  | { kind: 'step_output'; phase: Phase; step: string; text: string }
  | { kind: 'step_finished'; phase: Phase; step: string; ok: boolean; exitCode: number | null; durationMs: number; detail: string }
  | { kind: 'check_started'; phase: Phase; check: string; checkType: string; target: string }
  | {
      kind: 'check_progress';
      phase: Phase;
      check: string;
      attempts: number;
      elapsedMs: number;
      lastError: string | null;
      /** the last attempt passed: the check waits out success_threshold or stable_for, it is not failing */
      passing?: true;
      /** how long it has kept passing since it reached success_threshold */
      stableForMs?: number;
      /** the stable_for it must keep passing for (with stableForMs) */
      stableRequiredMs?: number;
    }
  | { kind: 'check_finished'; phase: Phase; check: CheckOutcomeSummary }
  | { kind: 'warning'; phase: Phase; message: string }
  | { kind: 'signal'; phase: Phase; signal: string; action: string }
  | { kind: 'summary'; phase: 'done'; summary: Summary };

export type RunEventKind = RunEvent['kind'];

/** Every kind, checked by the compiler to be complete (docs/events.md is tested against it). */
export const EVENT_KINDS = Object.keys({
  run_started: true,
  releases_resolved: true,
  phase_started: true,
  phase_finished: true,
  step_started: true,
  step_output: true,
  step_finished: true,
  check_started: true,
  check_progress: true,
  check_finished: true,
  warning: true,
  signal: true,
  summary: true,
} satisfies Record<RunEventKind, true>) as RunEventKind[];
export type EventOf<K extends RunEventKind> = Extract<RunEvent, { kind: K }>;

/** A renderer must say what it does with every kind of event (null = show nothing). */
export type Renderers<T> = { [K in RunEventKind]: (event: EventOf<K>) => T };

export type EventSink = (event: RunEvent) => void;

export function renderWith<T>(renderers: Renderers<T>, event: RunEvent): T {
  return (renderers[event.kind] as (e: RunEvent) => T)(event);
}
