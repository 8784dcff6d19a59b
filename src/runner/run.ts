// The only effectful loop of a restart: perform the phase the machine names, journal it, report it,
// feed the result back to next(). Every side effect has an intent record before and a done record after.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync } from 'node:fs';
import { EXIT, LockedError, PreflightError } from '../errors.js';
import type { CheckSpec, HookItemSpec, ResolvedRecipe, SlotSpec, StepSpec } from '../recipe/types.js';
import type { BaselineFigures, EventSink, Phase, RunEvent, Summary, TimelineEntry } from '../report/events.js';
import type { Resolver } from '../checks/types.js';
import { formatDuration, pollCheck, type CheckOutcome } from '../poll.js';
import { runStep, type StepResult } from '../process/step.js';
import { bindDeep, runtimeVars } from '../recipe/runtime-vars.js';
import { NO_WATCH, raceWatch, type ServiceWatch } from '../service/watch.js';
import { managerFor, type ServiceContext } from '../service/manager.js';
import { BlueGreenRun, RollingRun, providerFor, sequenceFor, type StrategyContext } from './strategies.js';
import { activateRelease } from './activate.js';
import { SHELL_KEYS, describeStep, runChecksAction, runHooksAction, runStepAction, type ActionContext } from './actions.js';
import { isAlive, readPidfile } from '../process/group.js';
import { Journal, JournalWriteError, describeInFlight, digestJournal, findUnfinishedRun, markRecovered, needsRecovery, readJournal, type JournalOptions } from './journal.js';
import { currentLockInfo, inspectLock, procStartTime, releaseLock, takeOverDeadLock, tryCreateLock } from './lock.js';
import { initialState, next, withReleases, type MachineEvent, type MachineState } from './machine.js';
import { readCurrentRelease, releaseExists, resolveReleases, type CommandRunner } from './release.js';
import { StateStore } from './state.js';
import { describeOutcome, leftStateLines } from './outcome.js';
import { killRecordedGroups } from './recover.js';
import { compare, measure, type SampleSet } from './baseline.js';
import { upTimeoutMs } from './budget.js';
import { DeadlineClock } from './deadline.js';
import { writeEvidence } from './evidence.js';
import { notifyAll, payloadFor } from '../notify.js';

export interface RunOptions {
  recipe: ResolvedRecipe;
  redact: (text: string) => string;
  stateDir: string;
  /** --release: the release to switch to; absent = in-place restart of the current release */
  release?: string;
  /** --reason: a ticket id or a sentence, recorded everywhere */
  reason?: string;
  env: NodeJS.ProcessEnv;
  emit: EventSink;
  /** Subscribe to SIGINT/SIGTERM; returns an unsubscribe function. */
  onSignal?: (handler: (signal: NodeJS.Signals) => void) => () => void;
  /** Subscribe to SIGHUP (the terminal went away): recorded, and the run goes on. */
  onHangup?: (handler: () => void) => () => void;
  resolver?: Resolver;
  journal?: JournalOptions;
  /** `recover`: finish an interrupted run instead of starting a new restart */
  mode?: 'run' | 'recover';
  /** chosen by the caller so its renderers can stamp every event; generated when absent */
  runId?: string;
  /** warnings found while loading the recipe: reported as events and kept in the summary */
  warnings?: string[];
}

export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${t}-${randomBytes(3).toString('hex')}`;
}

interface LockOutcome {
  takenOver: string | null;
  /** the unfinished run `recover` is finishing */
  unfinished: ReturnType<typeof digestJournal> | null;
}

async function acquire(store: StateStore, recipe: ResolvedRecipe, runId: string, journalPath: string, mode: 'run' | 'recover'): Promise<LockOutcome> {
  const path = store.lockPath(recipe.name);
  const deadline = Date.now() + recipe.lock.timeoutMs;
  const me = currentLockInfo(runId, mode, journalPath);
  for (let round = 0; round < 10_000; round++) {
    if (tryCreateLock(path, me)) {
      // a run that ended without journaling its end (it could not write) blocks the next run like a dead one
      const left = mode === 'run' ? findUnfinishedRun(store.runsDir(recipe.name)) : null;
      if (!left) return { takenOver: null, unfinished: null };
      releaseLock(path, runId);
      throw new LockedError('SR_UNFINISHED_RUN', `run ${left.runId} of ${recipe.name} never finished: it stopped during ${describeInFlight(left)} – run \`safe-restart recover ${recipe.file}\` first`);
    }
    const seen = inspectLock(path);
    if (seen.state === 'free') continue;
    if (seen.state === 'dead') {
      const digest = seen.info.journal && existsSync(seen.info.journal) ? digestJournal(readJournal(seen.info.journal)) : null;
      const unfinished = digest && needsRecovery(digest) ? digest : null;
      if (unfinished && mode === 'run') {
        throw new LockedError(
          'SR_UNFINISHED_RUN',
          `run ${seen.info.runId} of ${recipe.name} (pid ${seen.info.pid}, started ${seen.info.startedAt}) died during ${describeInFlight(unfinished)} – run \`safe-restart recover ${recipe.file}\` first (journal: ${seen.info.journal})`,
        );
      }
      if (takeOverDeadLock(path, seen.info)) {
        if (tryCreateLock(path, me)) {
          // a dead run that touched nothing needs no recover: its journal is closed by naming who took over
          // (if that fails the journal still reads as unfinished and untouched, which blocks nothing)
          if (digest && !unfinished && !digest.finished && digest.recoveredBy === null) markRecovered(seen.info.journal, digest.runId, runId);
          return { takenOver: `${seen.info.runId} (${seen.why})`, unfinished };
        }
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LockedError(
        'SR_LOCKED',
        `another run of ${recipe.name} holds the lock: pid ${seen.info.pid} on ${seen.info.host}, started ${seen.info.startedAt} (run ${seen.info.runId})`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now()))));
  }
  throw new LockedError('SR_LOCKED', `could not take the lock ${path}`);
}

/** Run one restart (or recover) to its end. Never throws for run failures: the summary says what happened. */
export async function runRestart(options: RunOptions): Promise<Summary> {
  const { recipe, emit, redact } = options;
  const mode = options.mode ?? 'run';
  const store = new StateStore(options.stateDir);
  const runId = options.runId ?? newRunId();
  const startedAt = new Date();
  const t0 = performance.now();
  const warnings: string[] = [...(options.warnings ?? [])];
  const elapsed = () => Math.round(performance.now() - t0);

  try {
    warnings.push(...store.prepare(recipe.name));
    // http checks pass rejectUnauthorized explicitly, but database drivers and webhooks obey this variable
    if (options.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') warnings.push('NODE_TLS_REJECT_UNAUTHORIZED=0 is set: TLS certificates are NOT verified for database checks and notifications (http checks still verify) – unset it');
  } catch (error) {
    throw new PreflightError('SR_STATE_DIR', `cannot use the state directory ${options.stateDir}: ${(error as Error).message} – nothing was touched`, { cause: error });
  }
  const journalPath = store.journalPath(recipe.name, runId);
  const lock = await acquire(store, recipe, runId, journalPath, mode);
  const unsubscribers: Array<() => void> = [];
  let journal: Journal | null = null;
  try {
    journal = new Journal(journalPath, runId, { redact, ...options.journal });
    return await runLocked();
  } catch (error) {
    if (error instanceof JournalWriteError && !journal?.touched) {
      throw new PreflightError('SR_JOURNAL_WRITE', `${error.message} – nothing was touched`, { cause: error });
    }
    throw error;
  } finally {
    for (const u of unsubscribers) u();
    journal?.close();
    releaseLock(store.lockPath(recipe.name), runId);
  }

  async function runLocked(): Promise<Summary> {
    const j = journal as Journal;
    const unfinished = mode === 'recover' ? (lock.unfinished ?? findUnfinishedRun(store.runsDir(recipe.name))) : null;
    const recorded = store.readRecipeState(recipe.name);
    if (lock.takenOver) warnings.push(`took over the lock of dead run ${lock.takenOver}`);

    let previous: string | null = null;
    let target: string | null = null;
    let interruptCount = 0;
    let rollingBack = false;
    let phaseController = new AbortController();
    const timeline: TimelineEntry[] = [];
    const failureDetails: string[] = [];
    const failedChecks: Array<{ phase: Phase; outcome: CheckOutcome }> = [];

    // a renderer that cannot write (terminal gone, pipe closed) must never end the run: the journal carries on
    const send = (event: RunEvent) => {
      try {
        emit(event);
      } catch {
        // the journal and the summary record what the terminal missed
      }
    };
    let lastSignal: NodeJS.Signals | null = null;
    const interruptReason = () => `interrupted by ${lastSignal ?? 'a signal'}`;

    if (options.onSignal) {
      unsubscribers.push(
        options.onSignal((signal) => {
          interruptCount++;
          lastSignal = signal;
          if (rollingBack && interruptCount < 2) {
            send({ kind: 'signal', phase: state.phase, signal, action: 'rollback in progress – send it again to abandon the rollback (exit 3)' });
            return;
          }
          send({ kind: 'signal', phase: state.phase, signal, action: rollingBack ? 'abandoning the rollback' : 'stopping the current phase' });
          phaseController.abort(new Error(`interrupted by ${signal}`));
        }),
      );
    }
    if (options.onHangup) {
      // a closed terminal (laptop lid, dropped SSH session) is not a request to stop: finish, and say so
      unsubscribers.push(
        options.onHangup(() => {
          const message = `the terminal hung up (SIGHUP) during ${state.phase}: the run goes on to its end; the journal and \`safe-restart history\` keep its outcome`;
          j.tryWrite({ type: 'note', phase: state.phase, detail: message });
          warnings.push(message);
          send({ kind: 'signal', phase: state.phase, signal: 'SIGHUP', action: 'ignored: the run goes on to its end' });
        }),
      );
    }

    let stepSeq = 0;
    // blue/green and rolling: the slot the current step or check is about (${SAFE_RESTART_SLOT}, ${SAFE_RESTART_PORT})
    let slotNow: SlotSpec | null = null;
    const ctx: ActionContext = {
      recipeName: recipe.name,
      runId,
      journal: j,
      emit: send,
      redact,
      ...(options.resolver ? { resolver: options.resolver } : {}),
      stepLogDir: store.stepLogDir(recipe.name, runId),
      stateDir: options.stateDir,
      runtime: (phase, release) => runtimeVars({ name: recipe.name, runId, phase, release, previous, target, slot: slotNow }),
      failedChecks,
      nextStepSeq: () => ++stepSeq,
    };
    const sctx: ServiceContext = { ...ctx, runStartedAt: startedAt, gatesTimeoutMs: Math.max(0, ...recipe.gates.map((g) => g.timeoutMs)) };
    const manager = await managerFor(recipe.service);
    const runOne = (phase: Phase, step: StepSpec, release: string | null, signal: AbortSignal): Promise<StepResult> => runStepAction(ctx, phase, step, release, signal);
    // deadline: the waits of these phases are cut so that the rollback's worst case is always left
    const clock = new DeadlineClock(recipe, t0);
    const runChecks = async (phase: Phase, checks: CheckSpec[], release: string | null, signal: AbortSignal, failFast: boolean): Promise<string | null> => {
      if (mode !== 'run' || !clock.active || !CUT_PHASES.has(phase)) return runChecksAction(ctx, phase, checks, release, signal, { failFast });
      const cut = clock.cut(phase, checks);
      return clock.explain(phase, cut, await runChecksAction(ctx, phase, cut.checks, release, signal, { failFast }));
    };
    const runHooks = (phase: Phase, items: HookItemSpec[], release: string | null, signal: AbortSignal): Promise<string | null> => runHooksAction(ctx, phase, items, release, signal);

    // the started service, watched while it is being proven (after_start hooks and gates)
    let serviceWatch: ServiceWatch = NO_WATCH;
    const watched = async (phase: Phase, signal: AbortSignal, work: (s: AbortSignal) => Promise<string | null>): Promise<string | null> => {
      const raced = await raceWatch(serviceWatch, signal, work, (failure) => failure !== null);
      if ('result' in raced) return raced.result;
      const { reason, evidence } = raced.failed;
      j.write({ type: 'note', phase, detail: redact([reason, ...evidence].join('\n')) });
      send({ kind: 'warning', phase, message: redact(`${reason} – ending ${phase} now`) });
      return evidence.length > 0 ? `${reason}; its log ends:\n${evidence.map((l) => `  ${l}`).join('\n')}` : reason;
    };

    const stopService = async (phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> => {
      // stopping the service ourselves is not a failure of it
      serviceWatch.stop();
      serviceWatch = NO_WATCH;
      return manager.stop(sctx, phase, release, signal);
    };

    const startService = async (phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> => {
      serviceWatch.stop();
      serviceWatch = NO_WATCH;
      const started = await manager.start(sctx, phase, release, signal);
      serviceWatch = started.watch;
      return started.failure;
    };

    // the service manager can manage the service as written (unit loaded, supervisord reachable): else exit 1, nothing touched
    const inspectService = async (signal: AbortSignal): Promise<string | null> => {
      // with slots, each slot's service (order@${SAFE_RESTART_SLOT}) must be manageable
      for (const slot of strategySlots.length > 0 ? strategySlots : [null]) {
        slotNow = slot;
        const seen = await manager.inspect(sctx, signal);
        for (const w of seen.warnings) {
          if (warnings.includes(w)) continue;
          warnings.push(w);
          send({ kind: 'warning', phase: 'verify', message: redact(w) });
        }
        if (!seen.ok) return seen.reason ?? `${manager.label} cannot be managed`;
      }
      slotNow = null;
      return null;
    };

    // blue/green and rolling: the load balancer and the phases of the strategy
    const strategy = recipe.strategy;
    const strategySlots: SlotSpec[] = strategy.kind === 'blue_green' ? strategy.slots : strategy.kind === 'rolling' ? strategy.instances : [];
    const strategyRun =
      strategy.kind === 'in_place'
        ? null
        : await (async () => {
            const sctxStrategy: StrategyContext = {
              recipe,
              runId,
              journal: j,
              emit: send,
              redact,
              warnings,
              store,
              provider: await providerFor(strategy, strategySlots),
              requested: options.release,
              setSlot: (slot) => {
                slotNow = slot;
              },
              stopService,
              startService,
              gates: async (phase, release, signal, bakeMs) => {
                const failure = await watched(phase, signal, (s) =>
                  runChecks(phase, bakeMs ? recipe.gates.map((g) => ({ ...g, successThreshold: 1, stableForMs: bakeMs, timeoutMs: bakeMs + g.timeoutMs })) : recipe.gates, release, s, true),
                );
                // each new slot or instance against the baseline (never the way back, never the bake)
                return failure ?? (bakeMs || (phase !== 'gates' && phase !== 'rollout') ? null : watched(phase, signal, (s) => compareBaselines(phase, release, s)));
              },
              upTimeoutMs: upTimeoutMs(recipe),
            };
            return strategy.kind === 'blue_green' ? new BlueGreenRun(sctxStrategy, strategy) : new RollingRun(sctxStrategy, strategy);
          })();

    // Baseline gates: the running release measured by each such gate's own probe before anything is stopped
    // (blue/green: the live slot; rolling: the first instance), the new one after its gate passed.
    const baselineBefore = new Map<string, SampleSet>();
    const baselineFigures = new Map<string, BaselineFigures>();
    const figuresOf = (set: SampleSet, release: string | null) => ({ release, ok: set.ok, samples: set.samples, p90Ms: set.p90Ms, errorRate: set.errorRate });
    const baselineGates = recipe.gates.filter((g) => g.baseline);
    const sampleGate = async (phase: Phase, gate: CheckSpec, release: string | null, signal: AbortSignal, label: string): Promise<SampleSet | string> => {
      const vars = ctx.runtime(phase, release);
      let check: CheckSpec;
      try {
        check = bindDeep(gate, vars, SHELL_KEYS);
      } catch (error) {
        return `gate "${gate.name}": ${(error as Error).message}`;
      }
      const samples = gate.baseline?.samples ?? 0;
      send({ kind: 'check_started', phase, check: `${gate.name} (${label})`, checkType: check.type, target: check.target });
      const started = performance.now();
      const set = await measure(check, samples, { signal, env: vars, ...(options.resolver ? { resolver: options.resolver } : {}) });
      const elapsedMs = Math.round(performance.now() - started);
      j.write({ type: 'note', phase, detail: redact(`${label} of gate ${gate.name} on release ${release ?? '(in place)'}: ${set.ok}/${set.samples} passed, p90 ${set.p90Ms ?? '-'}ms${set.firstError ? `; first error: ${set.firstError}` : ''}`) });
      send({ kind: 'check_finished', phase, check: { name: `${gate.name} (${label})`, type: check.type, target: redact(check.target), status: set.samples === samples ? 'ready' : 'cancelled', attempts: set.samples, elapsedMs, error: null } });
      return set;
    };
    const measureBaselines = async (signal: AbortSignal): Promise<string | null> => {
      if (mode !== 'run' || baselineGates.length === 0) return null;
      const slot = strategyRun instanceof BlueGreenRun ? strategyRun.live : (strategySlots[0] ?? null);
      if (strategyRun instanceof BlueGreenRun && slot === null) {
        warnings.push('no live slot yet (first run): the baseline gates are judged on their own thresholds only');
        return null;
      }
      slotNow = slot;
      try {
        for (const gate of baselineGates) {
          const set = await sampleGate('verify', gate, previous, signal, 'baseline');
          if (typeof set === 'string') return set;
          if (signal.aborted) return interruptReason();
          baselineBefore.set(gate.name, set);
          baselineFigures.set(gate.name, { gate: gate.name, samples: gate.baseline?.samples ?? 0, before: figuresOf(set, previous), after: null, detail: 'measured on the running release; the new one never got that far', verdict: 'not_compared' });
        }
      } finally {
        slotNow = null;
      }
      return null;
    };
    const compareBaselines = async (phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> => {
      const gates = mode === 'run' ? baselineGates.filter((g) => baselineBefore.has(g.name)) : [];
      const left = clock.leftFor(phase);
      const cutSignal = left === null ? signal : AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, left))]);
      const reasons: string[] = [];
      for (const gate of gates) {
        const before = baselineBefore.get(gate.name) as SampleSet;
        const spec = gate.baseline as NonNullable<CheckSpec['baseline']>;
        const after = await sampleGate(phase, gate, release, cutSignal, 'against the baseline');
        if (typeof after === 'string') return after;
        if (signal.aborted) return interruptReason();
        if (after.samples < spec.samples) {
          return clock.explain(phase, { checks: [], at: performance.now(), leftMs: Math.max(0, left ?? 0) }, `gate "${gate.name}": only ${after.samples} of ${spec.samples} samples measured against the baseline`);
        }
        const verdict = compare(gate.name, spec, before, after, previous);
        for (const n of verdict.notes) if (!warnings.includes(n)) warnings.push(n);
        baselineFigures.set(gate.name, {
          gate: gate.name,
          samples: spec.samples,
          before: figuresOf(before, previous),
          after: figuresOf(after, release),
          detail: [verdict.detail, ...verdict.notes].filter(Boolean).join('; '),
          verdict: verdict.detail === '' ? 'not_compared' : verdict.ok ? 'passed' : 'failed',
        });
        j.write({ type: 'note', phase, detail: redact(`baseline of gate ${gate.name}: ${verdict.ok ? 'passed' : 'failed'} – ${verdict.detail}`) });
        if (!verdict.ok && verdict.reason) reasons.push(verdict.reason);
      }
      return reasons.length > 0 ? reasons.join('; ') : null;
    };

    // An outage is not a bad release: when a gate fails, the dependencies get one quick round; if one is down too,
    // rolling back would start the old release into the same outage (on_dependency_outage decides).
    let outageStory: string | null = null;
    let haltRequested = false;
    const judgeGateFailure = async (phase: Phase, failure: string, signal: AbortSignal): Promise<string | null> => {
      if (mode !== 'run' || recipe.dependencies.length === 0 || signal.aborted) return failure;
      const round = await Promise.all(
        recipe.dependencies.map((d) => pollCheck(bindDeep(d, ctx.runtime('dependencies', target), SHELL_KEYS), { once: true, signal, env: ctx.runtime('dependencies', target), ...(options.resolver ? { resolver: options.resolver } : {}) })),
      );
      const down = round.filter((o) => o.status !== 'ready');
      if (down.length === 0 || signal.aborted) return failure;
      const names = down.map((o) => o.name).join(', ');
      const classified = `gates failed while ${names} ${down.length === 1 ? 'was' : 'were'} down`;
      const because = down.map((o) => redact(o.error?.message ?? `${o.name} not ready`)).join('; ');
      j.write({ type: 'note', phase, detail: redact(`dependency outage: ${classified} (${because}); the gate failure: ${failure}`) });
      const say = (message: string) => {
        warnings.push(message);
        send({ kind: 'warning', phase, message: redact(message) });
      };
      if (recipe.onDependencyOutage === 'rollback') {
        say(`${classified}: a dependency outage, not necessarily a bad release – rolling back as on_dependency_outage: rollback says`);
        return `${failure} (${classified})`;
      }
      if (recipe.onDependencyOutage === 'stop') {
        haltRequested = true;
        outageStory = `${classified} – held release ${target ?? '(in place)'} as it is, nothing rolled back (on_dependency_outage: stop)`;
        return `${outageStory}; ${because}`;
      }
      const t0 = performance.now();
      say(`${classified} – holding release ${target ?? '(in place)'} for up to ${formatDuration(recipe.outageWaitMs)} (outage_wait) for them to come back`);
      const waitFor = recipe.dependencies.map((d) => ({ ...d, timeoutMs: recipe.outageWaitMs, initialDelayMs: 0, stableForMs: 0, successThreshold: 1, attemptTimeoutMs: Math.min(d.attemptTimeoutMs, recipe.outageWaitMs) }));
      const back = await runChecks(phase, waitFor, target, signal, false);
      const waited = formatDuration(performance.now() - t0);
      if (back !== null) {
        outageStory = null;
        return `${classified} and ${down.length === 1 ? 'it' : 'they'} stayed down through outage_wait ${formatDuration(recipe.outageWaitMs)}: ${back}`;
      }
      const again = await watched(phase, signal, async (s) => (await runChecks(phase, recipe.gates, target, s, true)) ?? compareBaselines(phase, target, s));
      if (again === null) {
        outageStory = `${classified} – held release ${target ?? '(in place)'}, dependencies back after ${waited}, gates passed`;
        say(outageStory);
        return null;
      }
      return `${classified}; the dependencies were back after ${waited}, but the gates failed again: ${again}`;
    };

    const runCommand: CommandRunner = async (step, extra) => {
      const r = await runStep(bindDeep(step, ctx.runtime('resolve', null), SHELL_KEYS), { env: { ...ctx.runtime('resolve', null), ...extra }, signal: phaseController.signal });
      return { ok: r.ok, stdout: r.stdoutTail ?? r.outputTail, detail: describeStep(r) };
    };

    const activate = (phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> => activateRelease(ctx, recipe.release, phase, release, runCommand, signal);

    // PREVIOUS must still be there to go back to: a run that could not roll back must not start
    const rollbackReadiness = async (): Promise<string | null> => {
      if (mode !== 'run' || !recipe.rollback.enabled || !recipe.release || previous === null || previous === target) return null;
      const exists = await releaseExists(recipe.release, previous, runCommand);
      if (exists.ok) return null;
      return `release ${previous} to roll back to is gone: ${exists.detail} – restore it, or set rollback.enabled: false to run without a way back`;
    };

    // ----- the phases -----
    const perform = async (phase: Phase, signal: AbortSignal): Promise<string | null> => {
      if (strategyRun && (mode === 'run' || phase === 'converge')) {
        const handled = await strategyRun.perform(phase, signal);
        if (phase === 'converge') target = strategyRun.settled();
        // on_success: the old slot retired, then the recipe's hooks and the last good release as always
        if (handled !== undefined && phase !== 'on_success') return handled;
        if (phase === 'on_success' && handled) warnings.push(handled);
      }
      switch (phase) {
        case 'resolve':
          return resolvePhase();
        case 'dependencies':
          return runChecks(phase, recipe.dependencies, target, signal, false);
        case 'verify':
          return (await rollbackReadiness()) ?? (await inspectService(signal)) ?? (await runHooks(phase, recipe.verify, target, signal)) ?? measureBaselines(signal);
        case 'before_stop':
          // the last moment to refuse with nothing touched: what has been spent plus what cannot be shortened plus the reserve
          return (mode === 'run' ? clock.refusal() : null) ?? runHooks(phase, recipe.hooks.beforeStop, target, signal);
        case 'stop':
          return stopService(phase, previous, signal);
        case 'activate':
          return activate(phase, target, signal);
        case 'start':
          return startService(phase, target, signal);
        case 'after_start':
          return watched(phase, signal, (s) => runHooks(phase, recipe.hooks.afterStart, target, s));
        case 'gates': {
          const failure = await watched(phase, signal, (s) => runChecks(phase, recipe.gates, target, s, true));
          const worse = failure ?? (await watched(phase, signal, (s) => compareBaselines(phase, target, s)));
          return worse === null ? null : judgeGateFailure(phase, worse, signal);
        }
        case 'on_success': {
          const failure = await runHooks(phase, recipe.hooks.onSuccess, target, signal);
          store.writeRecipeState(recipe.name, { lastGoodRelease: target, lastGoodRunId: runId, updatedAt: new Date().toISOString() });
          return failure;
        }
        case 'rollback_stop':
        case 'cleanup_stop':
          return stopService(phase, target, signal);
        case 'rollback_activate':
          return activate(phase, previous, signal);
        case 'rollback_steps':
          for (const step of recipe.rollback.steps) {
            const r = await runOne(phase, step, previous, signal);
            if (!r.ok) return `rollback step "${step.name}" ${describeStep(r)}`;
          }
          return null;
        case 'rollback_start':
          return startService(phase, previous, signal);
        case 'rollback_gates':
          return watched(phase, signal, (s) => runChecks(phase, recipe.gates, previous, s, true));
        case 'on_rollback': {
          store.writeRecipeState(recipe.name, { lastGoodRelease: previous, lastGoodRunId: runId, updatedAt: new Date().toISOString() });
          return runHooks(phase, recipe.hooks.onRollback, previous, signal);
        }
        default:
          return `no action for phase ${phase}`;
      }
    };

    const resolvePhase = async (): Promise<string | null> => {
      const spec = recipe.release;
      if (mode === 'recover' && strategyRun) {
        const good = recorded.lastGoodRelease ?? unfinished?.previousRelease ?? null;
        // rolling also reads the dead run's journal: a finished rollout means the whole fleet reached its target
        const r = strategyRun instanceof BlueGreenRun ? await strategyRun.resolveRecover(phaseController.signal, good) : await strategyRun.resolveRecover(phaseController.signal, good, unfinished ? store.journalPath(recipe.name, unfinished.runId) : null);
        previous = r.previous;
        target = r.target;
        return r.ok ? null : (r.reason ?? 'cannot recover');
      }
      if (mode === 'recover') {
        // recover re-activates the last release that passed its gates, else the PREVIOUS of the dead run
        const fallback = unfinished?.previousRelease ?? null;
        target = recorded.lastGoodRelease ?? fallback;
        previous = spec ? await readCurrentRelease(spec, runCommand).catch(() => null) : null;
        if (!spec) {
          target = null;
          previous = null;
        } else if (target === null) {
          return 'no release ever passed its gates and the unfinished run recorded no previous release – nothing known to be good to go back to';
        }
        return null;
      }
      // a deadline that cannot hold the fixed steps and the way back refuses the run before anything else
      const refused = clock.refusal(t0);
      if (refused) return refused;
      const resolved = strategyRun ? await strategyRun.resolve(phaseController.signal) : await resolveReleases(spec, options.release, runCommand);
      previous = resolved.previous;
      target = resolved.target;
      return resolved.ok ? null : (resolved.reason ?? 'the releases could not be resolved');
    };

    // ----- the loop -----
    // a recover never rolls back: it is itself the way back
    const sequence = sequenceFor(recipe.strategy, mode);
    let state: MachineState = initialState({ previous: null, target: null, rollbackEnabled: mode === 'run' && recipe.rollback.enabled, ...(sequence ? { sequence } : {}) });
    j.write({
      type: 'run',
      recipe: recipe.name,
      file: recipe.file,
      host: hostname(),
      pid: process.pid,
      procStart: procStartTime(process.pid),
      startedAt: startedAt.toISOString(),
      command: mode,
      previousRelease: null,
      targetRelease: options.release ?? null,
      reason: options.reason,
      recovering: unfinished?.runId,
    });

    send({ kind: 'run_started', phase: 'lock', recipe: recipe.name, requestedRelease: options.release ?? null, host: hostname(), journal: journalPath, mode, ...(options.reason ? { userReason: redact(options.reason) } : {}) });
    for (const w of warnings) send({ kind: 'warning', phase: 'lock', message: redact(w) });
    const notifyBase = { recipe: recipe.name, runId, ...(options.reason ? { userReason: options.reason } : {}) };
    const startedNotification = recipe.notify.length > 0 ? notifyAll(recipe.notify, payloadFor('started', notifyBase), redact) : Promise.resolve([]);
    let journalBroken: JournalWriteError | null = null;
    for (let guard = 0; guard < 64 && !state.exit; guard++) {
      const phase = state.phase;
      rollingBack = phase.startsWith('rollback_') || phase === 'on_rollback' || phase === 'cleanup_stop' || phase === 'switch_back';
      const skip = skipReason(phase);
      const started = elapsed();
      if (skip) {
        timeline.push({ phase, startMs: started, durationMs: 0, result: 'skipped', detail: skip });
        state = next(state, { kind: 'ok' });
        continue;
      }
      let failure: string | null;
      try {
        // journal first: whoever sees the event (or kills us after it) finds the phase on record
        try {
          j.write({ type: 'phase', phase, status: 'started' });
        } finally {
          send({ kind: 'phase_started', phase, detail: phaseDetail(phase) });
        }
        // before recover touches the service (in place: its stop; blue/green and rolling: their converge), what the dead
        // run left: a kill between spawn() and its pidfile leaves a daemon no stop can find, holding the slot's port
        if ((phase === 'stop' || phase === 'converge') && mode === 'recover' && unfinished) {
          const killed = await killRecordedGroups(unfinished, j);
          if (killed.length > 0) send({ kind: 'warning', phase, message: `killed process groups left by run ${unfinished.runId}: ${killed.join(', ')}` });
        }
        failure = phaseController.signal.aborted ? interruptReason() : await perform(phase, phaseController.signal);
        // an interrupt that a phase rode out (a stop sped up to SIGKILL) still belongs to that phase; a proven release stays proven
        if (failure === null && phaseController.signal.aborted && phase !== 'on_success') failure = interruptReason();
      } catch (error) {
        if (error instanceof JournalWriteError) {
          journalBroken = error;
          failure = error.message;
        } else {
          failure = `${phase} failed: ${(error as Error)?.message ?? error}`;
        }
      }
      const durationMs = elapsed() - started;
      const interrupted = phaseController.signal.aborted;
      const result = failure === null ? 'ok' : interrupted ? 'interrupted' : 'failed';
      timeline.push({ phase, startMs: started, durationMs, result, ...(failure ? { detail: redact(failure) } : {}) });
      if (!journalBroken) {
        try {
          j.write({ type: 'phase', phase, status: 'finished', ok: failure === null, durationMs, ...(failure ? { detail: failure } : {}) });
        } catch (error) {
          journalBroken = error as JournalWriteError;
        }
      }
      send({ kind: 'phase_finished', phase, ok: failure === null, durationMs, ...(failure ? { detail: redact(failure) } : {}) });
      if (phase === 'resolve' && failure === null) {
        state = withReleases(state, previous, target);
        try {
          j.write({ type: 'releases', previousRelease: previous, targetRelease: target });
          if (recipe.release) send({ kind: 'releases_resolved', phase: 'resolve', previousRelease: previous, targetRelease: target });
        } catch (error) {
          journalBroken = error as JournalWriteError;
        }
      }
      if (journalBroken) {
        // refuse to go past a side effect that cannot be journaled
        state = { ...state, phase: 'done', failures: [...state.failures, { phase, reason: journalBroken.message }], exit: j.touched ? { code: 3, outcome: 'failed' } : { code: 1, outcome: 'aborted' } };
        break;
      }
      let event: MachineEvent;
      if (failure === null) event = { kind: 'ok' };
      else if (interrupted) {
        const signalName = lastSignal ?? 'SIGINT';
        event = rollingBack && interruptCount >= 2 ? { kind: 'abandon', signal: signalName } : { kind: 'interrupted', signal: signalName };
        if (!rollingBack) failureDetails.push(`interrupted by ${signalName} during ${phase}`);
      } else event = haltRequested ? { kind: 'halt', reason: failure } : { kind: 'failed', reason: failure };
      if (failure && !interrupted) failureDetails.push(failure);
      const wasRollingBack = rollingBack;
      state = next(state, event);
      if (!wasRollingBack && (state.phase.startsWith('rollback_') || state.phase === 'cleanup_stop' || state.phase === 'switch_back')) {
        // the rollback runs with a fresh signal: only a second interrupt abandons it
        phaseController = new AbortController();
      }
    }

    function skipReason(phase: Phase): string | null {
      // recover's forward path: resolve → kill what the dead run left → stop → activate → start → gates
      if (phase === 'before_stop' && mode === 'recover') return 'recover runs no before_stop hooks';
      if (phase === 'verify' && mode === 'recover') return 'recover goes back to a release that passed its gates';
      if (phase === 'verify' && recipe.verify.length === 0 && baselineGates.length === 0 && recipe.service.kind === 'commands' && !(recipe.rollback.enabled && recipe.release && previous !== null && previous !== target)) return 'none defined';
      if (phase === 'rollback_activate' && (!recipe.release || previous === null)) return 'nothing to re-activate';
      if (phase === 'rollback_steps' && recipe.rollback.steps.length === 0) return 'no rollback steps';
      if (phase === 'activate' && (!recipe.release || target === null || target === previous) && mode === 'run') return 'in-place restart';
      // with a deadline, before_stop also holds the last refusal with nothing touched
      if ((phase === 'before_stop' && recipe.hooks.beforeStop.length === 0 && !(clock.active && mode === 'run')) || (phase === 'after_start' && recipe.hooks.afterStart.length === 0)) return 'no hooks';
      if ((phase === 'dependencies' && recipe.dependencies.length === 0) || ((phase === 'gates' || phase === 'rollback_gates') && recipe.gates.length === 0)) return 'none defined';
      return null;
    }

    function phaseDetail(phase: Phase): string | undefined {
      switch (phase) {
        case 'prepare':
        case 'switch':
        case 'rollout':
          return strategyRun?.describe();
        case 'dependencies':
          return `${recipe.dependencies.length} check${recipe.dependencies.length === 1 ? '' : 's'}`;
        case 'verify': {
          const n = recipe.verify.length;
          return `${n > 0 ? `${n} item${n === 1 ? '' : 's'} on release ${target ?? '(in place)'}` : 'no items'}${recipe.rollback.enabled && previous !== null && previous !== target ? `; release ${previous} still there to roll back to` : ''}`;
        }
        case 'activate':
          return target ? `release ${target}` : undefined;
        case 'rollback_activate':
          return previous ? `release ${previous}` : undefined;
        case 'gates':
        case 'rollback_gates':
          return `${recipe.gates.length} gate${recipe.gates.length === 1 ? '' : 's'}`;
        default:
          return undefined;
      }
    }

    const exit = state.exit ?? { code: 3 as const, outcome: 'failed' as const };
    if (mode === 'recover' && unfinished && exit.code !== 3) {
      // the dead run is now accounted for
      if (!markRecovered(store.journalPath(recipe.name, unfinished.runId), unfinished.runId, runId)) warnings.push(`could not mark run ${unfinished.runId} as recovered`);
    }
    const recoverExit = mode === 'recover' && exit.code === 0 ? { code: EXIT.rolledBack as 2, outcome: 'rolled_back' as const } : exit;
    const described = describeOutcome({
      mode,
      exit: recoverExit,
      state,
      previous,
      target,
      failures: failureDetails.map(redact),
      recipe,
      unfinishedRunId: unfinished?.runId ?? null,
      outage: outageStory,
    });
    const leftState = recoverExit.code === 3 ? leftStateLines(recipe, store, journalPath, target, previous, (f) => readPidfile(f), isAlive) : undefined;
    const summary: Summary = {
      runId,
      recipe: recipe.name,
      outcome: recoverExit.outcome,
      exitCode: recoverExit.code,
      description: redact(described.description),
      reason: redact(described.reason),
      action: redact(described.action),
      previousRelease: previous,
      targetRelease: target,
      startedAt: startedAt.toISOString(),
      durationMs: elapsed(),
      timeline,
      journal: journalPath,
      warnings: warnings.map(redact),
      ...(leftState ? { leftState: leftState.map(redact) } : {}),
      ...(baselineFigures.size > 0 ? { baselines: [...baselineFigures.values()].map((b) => ({ ...b, detail: redact(b.detail) })) } : {}),
      ...(clock.active && mode === 'run' ? { deadline: { deadlineMs: recipe.deadlineMs ?? 0, reserveMs: clock.reserveMs, cut: clock.cutStory } } : {}),
    };
    // an abort because a dependency was down or the unit/program is not manageable is worth a bundle too
    const dependencyFailure = recoverExit.code === 1 && (state.failures[0]?.phase === 'dependencies' || (state.failures[0]?.phase === 'verify' && recipe.service.kind !== 'commands'));
    if (recoverExit.code === 2 || recoverExit.code === 3 || dependencyFailure) {
      try {
        const serviceFiles = await manager.evidence(sctx).catch((error: unknown) => [{ name: 'service-evidence-error.txt', text: String((error as Error)?.message ?? error) }]);
        summary.evidence = writeEvidence({
          serviceFiles,
          dir: store.evidenceDir(runId),
          summary,
          journalPath,
          stepLogDir: store.stepLogDir(recipe.name, runId),
          recipeFile: recipe.file,
          failedChecks,
          redact,
          ...(options.reason ? { userReason: options.reason } : {}),
        });
      } catch (error) {
        summary.warnings.push(redact(`could not write the evidence bundle: ${(error as Error).message}`));
      }
    }
    const notified = await Promise.all([
      startedNotification,
      recipe.notify.length > 0 ? notifyAll(recipe.notify, payloadFor(summary.outcome, notifyBase, summary), redact) : Promise.resolve([]),
    ]);
    for (const w of notified.flat()) {
      summary.warnings.push(w);
      send({ kind: 'warning', phase: 'done', message: w });
    }
    if (!journalBroken) j.tryWrite({ type: 'summary', summary });
    // the bundle's journal copy ends with the summary too
    if (summary.evidence) copyFileSafe(journalPath, join(summary.evidence, 'journal.jsonl'));
    send({ kind: 'summary', phase: 'done', summary });
    return summary;
  }
}

/** The phases whose waits a deadline may cut: they prove or wait, they change nothing. */
const CUT_PHASES: ReadonlySet<Phase> = new Set(['dependencies', 'gates', 'bake', 'rollout']);

function copyFileSafe(from: string, to: string): void {
  try {
    copyFileSync(from, to);
  } catch {
    // the bundle keeps its earlier copy
  }
}
