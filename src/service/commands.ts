// The recipe's own stop and start: a command, a signal to the pid in a pidfile, or a process safe-restart
// spawns itself (and then watches: it is our child, so its exit arrives as an event).
import type { ServiceSpec, StartSpec, StopSpec, StepSpec } from '../recipe/types.js';
import type { Phase } from '../report/events.js';
import { bindDeep } from '../recipe/runtime-vars.js';
import { spawnDaemon } from '../process/daemon.js';
import { stopByPidfile } from '../process/stop.js';
import type { StepResult } from '../process/step.js';
import { describeStep, runStepAction } from '../runner/actions.js';
import { JournalWriteError } from '../runner/journal.js';
import { procStartTime } from '../runner/lock.js';
import type { EvidenceFile, Inspection, ServiceContext, ServiceManager, StartResult } from './manager.js';
import { logLines, watchSpawned } from './process.js';
import { NO_WATCH } from './watch.js';

type Commands = Extract<ServiceSpec, { kind: 'commands' }>;

function stepFailure(r: StepResult, step: StepSpec): string | null {
  return r.ok ? null : `step "${step.name}" ${describeStep(r)}`;
}

export class CommandsManager implements ServiceManager {
  readonly label: string;
  constructor(private readonly spec: Commands) {
    this.label = spec.start.kind === 'spawn' ? `process ${spec.start.argv.join(' ')}` : 'the recipe\'s stop and start commands';
  }

  async inspect(): Promise<Inspection> {
    return { ok: true, warnings: [] };
  }

  async stop(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> {
    const written: StopSpec = this.spec.stop;
    if (written.kind === 'run') return stepFailure(await runStepAction(ctx, phase, written.step, release, signal), written.step);
    let spec: Extract<StopSpec, { kind: 'signal' }>;
    try {
      spec = bindDeep(written, ctx.runtime(phase, release));
    } catch (error) {
      return `stop failed: ${(error as Error).message}`;
    }
    const step = `${spec.signal} ${spec.pidfile}`;
    ctx.journal.write({ type: 'intent', phase, action: 'signal', detail: `${spec.signal} to the pid in ${spec.pidfile}, SIGKILL of its group after ${spec.graceMs}ms` });
    ctx.emit({ kind: 'step_started', phase, step });
    const r = await stopByPidfile({ pidfile: spec.pidfile, signal: spec.signal, graceMs: spec.graceMs, timeoutMs: spec.timeoutMs, signalAbort: signal });
    const detail = r.alreadyStopped ? 'already stopped' : r.ok ? `pid ${r.pid} stopped${r.escalated ? ' (SIGKILL after grace)' : ''}` : (r.error?.message ?? 'stop failed');
    ctx.journal.write({ type: 'done', phase, action: 'signal', ok: r.ok, durationMs: r.durationMs, detail, pid: r.pid });
    ctx.emit({ kind: 'step_finished', phase, step, ok: r.ok, exitCode: null, durationMs: r.durationMs, detail });
    return r.ok ? null : `stop failed: ${detail}`;
  }

  async start(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<StartResult> {
    const written: StartSpec = this.spec.start;
    if (written.kind === 'run') return { failure: stepFailure(await runStepAction(ctx, phase, written.step, release, signal), written.step), watch: NO_WATCH };
    let spec: Extract<StartSpec, { kind: 'spawn' }>;
    try {
      spec = bindDeep(written, ctx.runtime(phase, release));
    } catch (error) {
      return { failure: `spawn failed: ${(error as Error).message}`, watch: NO_WATCH };
    }
    const label = spec.argv.join(' ');
    const step = `spawn ${label}`;
    ctx.journal.write({ type: 'intent', phase, action: 'spawn', detail: ctx.redact(label) });
    ctx.emit({ kind: 'step_started', phase, step });
    const t = performance.now();
    try {
      const env = { ...ctx.runtime(phase, release), ...spec.env };
      const { pid, pgid, exited } = await spawnDaemon({ argv: spec.argv, cwd: spec.cwd, env, log: spec.log, pidfile: spec.pidfile });
      const watch = watchSpawned({ pid, label: ctx.redact(label), exited, ...(spec.log ? { log: spec.log } : {}), startedAt: t });
      ctx.journal.write({ type: 'child', phase, action: 'spawn', pid, pgid, startTime: procStartTime(pid) });
      const durationMs = Math.round(performance.now() - t);
      ctx.journal.write({ type: 'done', phase, action: 'spawn', ok: true, durationMs, detail: `pid ${pid}`, pid, pgid });
      ctx.emit({ kind: 'step_finished', phase, step, ok: true, exitCode: null, durationMs, detail: `pid ${pid}, pidfile ${spec.pidfile}` });
      return { failure: null, watch };
    } catch (error) {
      if (error instanceof JournalWriteError) throw error;
      const durationMs = Math.round(performance.now() - t);
      const detail = ctx.redact((error as Error).message);
      ctx.journal.write({ type: 'done', phase, action: 'spawn', ok: false, durationMs, detail });
      ctx.emit({ kind: 'step_finished', phase, step, ok: false, exitCode: null, durationMs, detail });
      return { failure: `spawn failed: ${detail}`, watch: NO_WATCH };
    }
  }

  async evidence(ctx: ServiceContext): Promise<EvidenceFile[]> {
    const start = this.spec.start;
    if (start.kind !== 'spawn' || !start.log) return [];
    let log: string;
    try {
      log = bindDeep(start.log, ctx.runtime('start', null));
    } catch {
      return [];
    }
    const lines = logLines(log, 200);
    return lines.length > 0 ? [{ name: 'service-log-tail.txt', text: `${ctx.redact(lines.join('\n'))}\n` }] : [];
  }

  async live(): Promise<string | null> {
    return null;
  }
}
