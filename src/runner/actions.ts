// Phase actions shared by `run`, `recover` and `preflight`: run a step, poll checks (gates fail fast), run hooks.
// Each takes one small context instead of reaching into the loop's state; run-time variables are bound here,
// just before a step or a check runs, and every command gets them in its environment.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { CheckSpec, HookItemSpec, StepSpec } from '../recipe/types.js';
import type { CheckOutcomeSummary, EventSink, Phase } from '../report/events.js';
import type { Resolver } from '../checks/types.js';
import { pollCheck, type CheckOutcome } from '../poll.js';
import { runStep, type StepResult } from '../process/step.js';
import { tellingLine } from '../process/telling-line.js';
import { bindDeep, RuntimeBindError, type RuntimeVars } from '../recipe/runtime-vars.js';
import type { NewRecord } from './journal.js';
import { procStartTime } from './lock.js';

const PROGRESS_EVERY_MS = 1_000;
export const SHELL_KEYS: ReadonlySet<string> = new Set(['run', 'command']);

export interface ActionContext {
  recipeName: string;
  runId: string;
  journal: { write(record: NewRecord): void };
  emit: EventSink;
  redact: (text: string) => string;
  resolver?: Resolver;
  /** Where step output goes; null = no step logs (preflight) */
  stepLogDir: string | null;
  /** the state directory (recipe: checks read other recipes' locks and journals there) */
  stateDir?: string;
  /** The run-time variables for a phase about `release` */
  runtime(phase: Phase, release: string | null): RuntimeVars;
  /** Every check that did not pass, for the evidence bundle */
  failedChecks: Array<{ phase: Phase; outcome: CheckOutcome }>;
  /** Numbers step logs in run order */
  nextStepSeq(): number;
}

/** A step that could not even be bound (a run-time value unfit for a shell command) fails like one that exited non-zero. */
function boundFailure(error: RuntimeBindError): StepResult {
  return { ok: false, exitCode: null, signal: null, timedOut: false, aborted: false, durationMs: 0, pid: undefined, pgid: undefined, outputTail: '', error: { code: error.code, message: error.message } };
}

export async function runStepAction(ctx: ActionContext, phase: Phase, written: StepSpec, release: string | null, signal: AbortSignal): Promise<StepResult> {
  const vars = ctx.runtime(phase, release);
  let step: StepSpec;
  try {
    step = bindDeep(written, vars, SHELL_KEYS);
  } catch (error) {
    if (!(error instanceof RuntimeBindError)) throw error;
    ctx.emit({ kind: 'step_finished', phase, step: written.name, ok: false, exitCode: null, durationMs: 0, detail: ctx.redact(error.message) });
    return boundFailure(error);
  }
  let logFile: string | undefined;
  if (ctx.stepLogDir) {
    logFile = stepLogPath(ctx.stepLogDir, ctx.nextStepSeq(), phase, step.name);
    mkdirSync(ctx.stepLogDir, { recursive: true, mode: 0o700 });
  }
  ctx.journal.write({ type: 'intent', phase, action: step.name, detail: ctx.redact(Array.isArray(step.run) ? JSON.stringify(step.run) : step.run) });
  ctx.emit({ kind: 'step_started', phase, step: step.name });
  const local = new AbortController();
  const onAbort = () => local.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) local.abort(signal.reason);
  let journalError: unknown = null;
  const output = wholeLines(ctx.redact, (text) => ctx.emit({ kind: 'step_output', phase, step: step.name, text }));
  try {
    const result = await runStep(step, {
      env: vars,
      ...(logFile ? { outputFile: logFile } : {}),
      signal: local.signal,
      redact: ctx.redact,
      onSpawn: ({ pid, pgid }) => {
        try {
          ctx.journal.write({ type: 'child', phase, action: step.name, pid, pgid, startTime: procStartTime(pid) });
        } catch (error) {
          journalError = error;
          local.abort(error);
        }
      },
      onOutput: output.write,
    });
    output.flush();
    if (journalError) throw journalError;
    const detail = describeStep(result);
    ctx.journal.write({ type: 'done', phase, action: step.name, ok: result.ok, durationMs: result.durationMs, detail: ctx.redact(detail), exitCode: result.exitCode, pid: result.pid, pgid: result.pgid, outputTail: ctx.redact(result.outputTail) });
    ctx.emit({ kind: 'step_finished', phase, step: step.name, ok: result.ok, exitCode: result.exitCode, durationMs: result.durationMs, detail: ctx.redact(detail) });
    return result;
  } finally {
    output.flush();
    signal.removeEventListener('abort', onAbort);
  }
}

export async function pollCheckAction(ctx: ActionContext, phase: Phase, written: CheckSpec, release: string | null, signal: AbortSignal): Promise<CheckOutcome> {
  const vars = ctx.runtime(phase, release);
  let check: CheckSpec;
  try {
    check = bindDeep(written, vars, SHELL_KEYS);
  } catch (error) {
    if (!(error instanceof RuntimeBindError)) throw error;
    const outcome: CheckOutcome = { name: written.name, type: written.type, target: written.target, status: 'failed', attempts: 0, elapsedMs: 0, error: { code: error.code, message: `check "${written.name}": ${error.message}` }, last: null, cancelled: false };
    ctx.emit({ kind: 'check_finished', phase, check: summarizeCheck(outcome, ctx.redact) });
    return outcome;
  }
  ctx.emit({ kind: 'check_started', phase, check: check.name, checkType: check.type, target: check.target });
  let lastProgress = performance.now();
  const started = performance.now();
  const outcome = await pollCheck(check, {
    signal,
    resolver: ctx.resolver,
    env: vars,
    ...(ctx.stateDir ? { stateDir: ctx.stateDir } : {}),
    onAttempt: (n, r, progress) => {
      const now = performance.now();
      if (now - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = now;
        ctx.emit({ kind: 'check_progress', phase, check: check.name, attempts: n, elapsedMs: Math.round(now - started), lastError: r.error ? ctx.redact(`${r.error.code}: ${r.error.message}`) : null, ...progress });
      }
    },
  });
  ctx.emit({ kind: 'check_finished', phase, check: summarizeCheck(outcome, ctx.redact) });
  return outcome;
}

/**
 * Poll checks concurrently. With `failFast` (gates) the first definitive failure cancels the others, which
 * report `cancelled` with what each had seen; without it (dependencies) every check runs to its own verdict.
 */
export async function runChecksAction(
  ctx: ActionContext,
  phase: Phase,
  checks: CheckSpec[],
  release: string | null,
  signal: AbortSignal,
  opts: { failFast: boolean },
): Promise<string | null> {
  if (checks.length === 0) return null;
  const local = new AbortController();
  const onAbort = () => local.abort(signal.reason);
  if (signal.aborted) local.abort(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  let firstFailure: CheckOutcome | null = null;
  try {
    const outcomes = await Promise.all(
      checks.map(async (c) => {
        const outcome = await pollCheckAction(ctx, phase, c, release, local.signal);
        if (outcome.status !== 'ready' && !outcome.cancelled && firstFailure === null) {
          firstFailure = outcome;
          if (opts.failFast) local.abort(new Error(`check "${outcome.name}" failed`));
        }
        return outcome;
      }),
    );
    const failed = outcomes.filter((o) => o.status !== 'ready');
    if (failed.length === 0) return null;
    ctx.failedChecks.push(...failed.map((outcome) => ({ phase, outcome })));
    const definitive = failed.filter((o) => !o.cancelled);
    const shown = definitive.length > 0 ? definitive : failed;
    const reason = shown.map((o) => ctx.redact(o.error?.message ?? `${o.name} failed`)).join('; ');
    const cancelled = failed.filter((o) => o.cancelled && definitive.length > 0);
    return cancelled.length > 0 ? `${reason} (cancelled: ${cancelled.map((o) => o.name).join(', ')})` : reason;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export async function runHooksAction(ctx: ActionContext, phase: Phase, items: HookItemSpec[], release: string | null, signal: AbortSignal): Promise<string | null> {
  for (const item of items) {
    if (signal.aborted) return String((signal.reason as Error)?.message ?? 'interrupted');
    if (item.kind === 'step') {
      const r = await runStepAction(ctx, phase, item.step, release, signal);
      if (!r.ok) return `${phase === 'verify' ? 'verify step' : 'hook'} "${item.step.name}" ${describeStep(r)}`;
    } else {
      const failure = await runChecksAction(ctx, phase, [item.check], release, signal, { failFast: true });
      if (failure) return failure;
    }
  }
  return null;
}

// a line this long without an end (a progress bar that never prints one) goes out as it is
const MAX_HELD_CHARS = 16_384;

/**
 * Step output in whole lines: the output file is read in chunks, and a secret cut in two by a chunk boundary would
 * pass redaction half by half. What follows the last line end is held for the next chunk (or the step's end).
 */
export function wholeLines(redact: (text: string) => string, out: (text: string) => void): { write(text: string): void; flush(): void } {
  let held = '';
  const send = (text: string) => {
    if (text) out(redact(text));
  };
  return {
    write(text: string): void {
      held += text;
      const end = Math.max(held.lastIndexOf('\n'), held.lastIndexOf('\r'));
      if (end >= 0) {
        send(held.slice(0, end + 1));
        held = held.slice(end + 1);
      }
      if (held.length > MAX_HELD_CHARS) {
        send(held);
        held = '';
      }
    },
    flush(): void {
      send(held);
      held = '';
    },
  };
}

export function describeStep(r: StepResult): string {
  const line = tellingLine(r.outputTail).slice(0, 200);
  const withLine = (text: string) => (line ? `${text}: ${line}` : text);
  if (r.ok) return `exited 0 in ${r.durationMs}ms`;
  if (r.timedOut) return `timed out after ${r.durationMs}ms (process group killed)`;
  if (r.aborted) return `interrupted after ${r.durationMs}ms (process group killed)`;
  if (r.exitCode !== null) return withLine(`exited ${r.exitCode}`);
  if (r.signal) return withLine(`killed by ${r.signal}`);
  return r.error ? `failed: ${r.error.code} ${r.error.message}` : 'failed';
}

export function summarizeCheck(o: CheckOutcome, redact: (t: string) => string): CheckOutcomeSummary {
  return {
    name: o.name,
    type: o.type,
    target: redact(o.target),
    status: o.status === 'ready' ? 'ready' : o.cancelled ? 'cancelled' : 'failed',
    attempts: o.attempts,
    elapsedMs: o.elapsedMs,
    error: o.error ? { code: o.error.code, message: redact(o.error.message) } : null,
  };
}

function stepLogPath(dir: string, seq: number, phase: Phase, name: string): string {
  return join(dir, `${String(seq).padStart(2, '0')}-${phase}-${name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40)}.log`);
}
