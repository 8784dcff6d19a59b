// `deadline:` during a run: the clock that refuses a run which cannot fit, and cuts the waits that can be
// shortened (dependencies, gates, outage_wait) so that the rollback's worst case is always left.
import { formatMs as formatDuration } from '../recipe/duration.js';
import type { CheckSpec, ResolvedRecipe } from '../recipe/types.js';
import type { Phase } from '../report/events.js';
import { deadlineBudget, worstCase, type WorstCase } from './budget.js';

export interface Cut {
  checks: CheckSpec[];
  /** when the cut ends the wait (performance.now() time), null = not cut */
  at: number | null;
  /** what the wait was given */
  leftMs: number;
}

export class DeadlineClock {
  private readonly w: WorstCase;
  private readonly deadlineAt: number | null;
  /** the first wait the deadline shortened and then ended, for the summary */
  cutStory: string | null = null;

  constructor(private readonly recipe: ResolvedRecipe, private readonly startedAt: number) {
    this.w = worstCase(recipe);
    this.deadlineAt = recipe.deadlineMs === null ? null : startedAt + recipe.deadlineMs;
  }

  get active(): boolean {
    return this.deadlineAt !== null;
  }

  get reserveMs(): number {
    return this.w.rollbackMs;
  }

  /** Why the run cannot go on within the deadline (exit 1, nothing touched), or null. `now` = the run's start: the recipe's own arithmetic. */
  refusal(now = performance.now()): string | null {
    const b = deadlineBudget(this.recipe, Math.round(now - this.startedAt), this.w);
    if (!b || b.fits) return null;
    return `deadline ${formatDuration(b.deadlineMs)} cannot hold this run with its way back: ${b.arithmetic} – raise deadline, or lower the timeouts of the fixed steps or of the rollback`;
  }

  /** What the shortenable waits of `phase` may take from now, keeping the reserve and the fixed phases after it. */
  leftFor(phase: Phase, now = performance.now()): number | null {
    if (this.deadlineAt === null) return null;
    const forward = this.w.phases;
    const i = forward.findIndex((p) => p.phase === phase);
    // what is still ahead at its least, from before_stop on (the phases before it are measured as they run), up
    // to the proof; on_success needs no reserve: once the proof is in, the way back is not needed
    const from = Math.max(i + 1, forward.findIndex((p) => p.phase === 'before_stop'));
    const ahead = i < 0 ? 0 : forward.slice(from, -1).reduce((sum, p) => sum + (p.minMs ?? p.ms), 0);
    return Math.floor(this.deadlineAt - now - this.w.rollbackMs - ahead);
  }

  /** The checks with their timeouts cut to what the deadline leaves `phase` (and the cut's end). */
  cut(phase: Phase, checks: CheckSpec[], now = performance.now()): Cut {
    const left = this.leftFor(phase, now);
    if (left === null || checks.every((c) => c.initialDelayMs + c.timeoutMs <= left)) return { checks, at: null, leftMs: left ?? Infinity };
    const leftMs = Math.max(0, left);
    return {
      checks: checks.map((c) => (c.initialDelayMs + c.timeoutMs <= leftMs ? c : { ...c, timeoutMs: Math.max(0, leftMs - c.initialDelayMs), attemptTimeoutMs: Math.max(1, Math.min(c.attemptTimeoutMs, leftMs)) })),
      at: now + leftMs,
      leftMs,
    };
  }

  /** A failure that came at the cut: say that the deadline ended the wait, and remember it for the summary. */
  explain(phase: Phase, cut: Cut, failure: string | null, now = performance.now()): string | null {
    if (failure === null || cut.at === null || now < cut.at - 50) return failure;
    const story = `${phase.replace(/_/g, ' ')} cut by the deadline: ${formatDuration(cut.leftMs)} of deadline ${formatDuration(this.recipe.deadlineMs ?? 0)} were left for them after keeping ${formatDuration(this.w.rollbackMs)} for the rollback`;
    this.cutStory ??= story;
    return `${failure} (${story})`;
  }
}
