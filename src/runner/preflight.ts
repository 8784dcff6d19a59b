// `preflight`: everything `run` does before it would stop anything — lock and unfinished-run state, PREVIOUS and
// TARGET, rollback readiness, dependencies, verify — and nothing else: no lock taken, no journal, nothing stopped.
// "Can we deploy now?" for CI and Ansible's check mode.
import { hostname } from 'node:os';
import type { Resolver } from '../checks/types.js';
import type { ResolvedRecipe } from '../recipe/types.js';
import type { CheckOutcomeSummary, EventSink, Phase } from '../report/events.js';
import { runStep } from '../process/step.js';
import { bindDeep, runtimeVars } from '../recipe/runtime-vars.js';
import { SHELL_KEYS, describeStep, runChecksAction, runHooksAction, type ActionContext } from './actions.js';
import { digestJournal, describeInFlight, findUnfinishedRun, needsRecovery, readJournal } from './journal.js';
import { inspectLock } from './lock.js';
import { releaseExists, resolveReleases, type CommandRunner } from './release.js';
import { StateStore } from './state.js';
import { formatDuration } from '../poll.js';
import { deadlineBudget, worstCase, type DeadlineBudget, type WorstCase } from './budget.js';
import { existsSync } from 'node:fs';
import { managerFor, type ServiceContext } from '../service/manager.js';

export interface PreflightOptions {
  recipe: ResolvedRecipe;
  redact: (text: string) => string;
  stateDir: string;
  release?: string;
  emit?: EventSink;
  resolver?: Resolver;
  signal?: AbortSignal;
}

export type LockReport =
  | { state: 'free' }
  | { state: 'held'; pid: number; host: string; startedAt: string; runId: string; detail: string }
  | { state: 'stale'; runId: string; detail: string }
  | { state: 'unfinished'; runId: string; detail: string };

export interface VerifyItemReport {
  name: string;
  kind: 'step' | 'check';
  ok: boolean;
  detail: string;
}

export interface PreflightReport {
  recipe: string;
  file: string;
  host: string;
  /** 0 a run would go ahead now · 1 it would abort · 4 locked, or `recover` must run first */
  exitCode: 0 | 1 | 4;
  ok: boolean;
  /** why a run would not go ahead; null when it would */
  reason: string | null;
  previousRelease: string | null;
  targetRelease: string | null;
  /** null: not checked (no release section, or the releases could not be resolved) */
  targetExists: boolean | null;
  /** PREVIOUS still there to roll back to; null when rollback does not apply */
  rollbackReady: { ok: boolean; detail: string } | null;
  lock: LockReport;
  dependencies: CheckOutcomeSummary[];
  verify: VerifyItemReport[];
  worstCase: WorstCase;
  /** with deadline: the budget's arithmetic; a run that does not fit is refused (exit 1) */
  deadline?: DeadlineBudget;
  /** the service manager's view: can it manage the service as written (unit loaded, supervisord reachable)? */
  service: { label: string; ok: boolean; reason: string | null; live: string | null } | null;
  /** where the recipe cannot work as written (a stop bound shorter than the unit's TimeoutStopSec …) */
  warnings: string[];
  /** the run-time variables a run would start with */
  runtime: { SAFE_RESTART_RELEASE: string; SAFE_RESTART_PREVIOUS_RELEASE: string; SAFE_RESTART_TARGET_RELEASE: string };
  durationMs: number;
}

function lockReport(store: StateStore, recipe: ResolvedRecipe): LockReport {
  const seen = inspectLock(store.lockPath(recipe.name));
  if (seen.state === 'live') {
    const { info } = seen;
    return { state: 'held', pid: info.pid, host: info.host, startedAt: info.startedAt, runId: info.runId, detail: `another run of ${recipe.name} holds the lock: pid ${info.pid} on ${info.host}, started ${info.startedAt} (run ${info.runId})` };
  }
  if (seen.state === 'dead') {
    const digest = seen.info.journal && existsSync(seen.info.journal) ? digestJournal(readJournal(seen.info.journal)) : null;
    if (digest && needsRecovery(digest)) {
      return { state: 'unfinished', runId: seen.info.runId, detail: `run ${seen.info.runId} of ${recipe.name} died during ${describeInFlight(digest)} – run \`safe-restart recover ${recipe.file}\` first` };
    }
    return { state: 'stale', runId: seen.info.runId, detail: `the lock of dead run ${seen.info.runId} (${seen.why}) would be taken over` };
  }
  const left = findUnfinishedRun(store.runsDir(recipe.name));
  if (left) return { state: 'unfinished', runId: left.runId, detail: `run ${left.runId} of ${recipe.name} never finished: it stopped during ${describeInFlight(left)} – run \`safe-restart recover ${recipe.file}\` first` };
  return { state: 'free' };
}

export async function preflight(options: PreflightOptions): Promise<PreflightReport> {
  const { recipe, redact } = options;
  const t0 = performance.now();
  const emit: EventSink = (event) => {
    try {
      options.emit?.(event);
    } catch {
      // a renderer that cannot write changes no verdict
    }
  };
  const signal = options.signal ?? new AbortController().signal;
  const store = new StateStore(options.stateDir);
  let previous: string | null = null;
  let target: string | null = null;
  const runtime = (phase: Phase, release: string | null) => runtimeVars({ name: recipe.name, runId: 'preflight', phase, release, previous, target });
  const verify: VerifyItemReport[] = [];
  const ctx: ActionContext = {
    recipeName: recipe.name,
    runId: 'preflight',
    journal: { write: () => {} },
    emit: (event) => {
      emit(event);
      if (event.phase !== 'verify') return;
      if (event.kind === 'step_finished') verify.push({ name: event.step, kind: 'step', ok: event.ok, detail: event.detail });
      if (event.kind === 'check_finished') verify.push({ name: event.check.name, kind: 'check', ok: event.check.status === 'ready', detail: event.check.error?.message ?? `${event.check.attempts} attempts` });
    },
    redact,
    ...(options.resolver ? { resolver: options.resolver } : {}),
    stepLogDir: null,
    stateDir: options.stateDir,
    runtime,
    failedChecks: [],
    nextStepSeq: () => 0,
  };
  const runCommand: CommandRunner = async (step, extra) => {
    const r = await runStep(bindDeep(step, runtime('resolve', null), SHELL_KEYS), { env: { ...runtime('resolve', null), ...extra }, signal });
    return { ok: r.ok, stdout: r.stdoutTail ?? r.outputTail, detail: describeStep(r) };
  };

  const dependencies: CheckOutcomeSummary[] = [];
  const warnings: string[] = [];
  let service: PreflightReport['service'] = null;
  let targetExists: boolean | null = null;
  let rollbackReady: PreflightReport['rollbackReady'] = null;
  const finish = (exitCode: 0 | 1 | 4, reason: string | null, lock: LockReport): PreflightReport => ({
    recipe: recipe.name,
    file: recipe.file,
    host: hostname(),
    exitCode,
    ok: exitCode === 0,
    reason: reason === null ? null : redact(reason),
    previousRelease: previous,
    targetRelease: target,
    targetExists,
    rollbackReady,
    lock,
    dependencies,
    verify,
    worstCase: worstCase(recipe),
    ...(recipe.deadlineMs !== null ? { deadline: deadlineBudget(recipe) as DeadlineBudget } : {}),
    service,
    warnings: warnings.map(redact),
    runtime: { SAFE_RESTART_RELEASE: target ?? '', SAFE_RESTART_PREVIOUS_RELEASE: previous ?? '', SAFE_RESTART_TARGET_RELEASE: target ?? '' },
    durationMs: Math.round(performance.now() - t0),
  });

  const lock = lockReport(store, recipe);
  if (lock.state === 'held' || lock.state === 'unfinished') return finish(4, lock.detail, lock);
  const budget = deadlineBudget(recipe);
  if (budget && !budget.fits) return finish(1, `deadline ${formatDuration(budget.deadlineMs)} cannot hold this run with its way back: ${budget.arithmetic}`, lock);

  const resolved = await resolveReleases(recipe.release, options.release, runCommand);
  previous = resolved.previous;
  target = resolved.target;
  if (!resolved.ok) {
    if (recipe.release && target !== null && /not found/.test(resolved.reason)) targetExists = false;
    return finish(1, resolved.reason, lock);
  }
  if (recipe.release && target !== null) targetExists = true;
  if (recipe.rollback.enabled && recipe.release && previous !== null && previous !== target) {
    const exists = await releaseExists(recipe.release, previous, runCommand);
    rollbackReady = exists.ok ? { ok: true, detail: exists.detail } : { ok: false, detail: `release ${previous} to roll back to is gone: ${exists.detail}` };
  }

  const collect = (event: Parameters<EventSink>[0]) => {
    if (event.kind === 'check_finished' && event.phase === 'dependencies') dependencies.push(event.check);
  };
  const depCtx: ActionContext = { ...ctx, emit: (event) => (collect(event), ctx.emit(event)) };
  const depFailure = await runChecksAction(depCtx, 'dependencies', recipe.dependencies, target, signal, { failFast: false });
  // keep the recipe's order, whatever order the checks finished in
  dependencies.sort((a, b) => recipe.dependencies.findIndex((d) => d.name === a.name) - recipe.dependencies.findIndex((d) => d.name === b.name));
  if (depFailure) return finish(1, depFailure, lock);
  if (rollbackReady && !rollbackReady.ok) return finish(1, `${rollbackReady.detail} – restore it, or set rollback.enabled: false to run without a way back`, lock);
  const manager = await managerFor(recipe.service);
  const sctx: ServiceContext = { ...ctx, runStartedAt: new Date(), gatesTimeoutMs: Math.max(0, ...recipe.gates.map((g) => g.timeoutMs)) };
  const seen = await manager.inspect(sctx, signal);
  warnings.push(...seen.warnings);
  service = { label: manager.label, ok: seen.ok, reason: seen.reason ? redact(seen.reason) : null, live: seen.ok ? await manager.live(signal).catch(() => null) : null };
  if (!seen.ok) return finish(1, seen.reason ?? `${manager.label} cannot be managed`, lock);
  const verifyFailure = await runHooksAction(ctx, 'verify', recipe.verify, target, signal);
  if (verifyFailure) return finish(1, verifyFailure, lock);
  return finish(0, null, lock);
}

