// A supervisord program, through supervisorctl (-c CONF / -s URL): supervisord reachable and the program known
// before anything is touched, stop and start (supervisorctl waits for RUNNING after startsecs), the watch
// (BACKOFF, FATAL, EXITED, STOPPED or a new pid fail the phase at once) and the program's log tails as evidence.
import type { ServiceSpec, StepSpec } from '../recipe/types.js';
import type { Phase } from '../report/events.js';
import { bindTemplate } from '../recipe/runtime-vars.js';
import { describeStep, runStepAction } from '../runner/actions.js';
import type { EvidenceFile, Inspection, ServiceContext, ServiceManager, StartResult } from './manager.js';
import { query } from './systemd.js';
import type { ServiceWatch, WatchFailure } from './watch.js';
import { NO_WATCH, pollingWatch } from './watch.js';

type Supervisor = Extract<ServiceSpec, { kind: 'supervisor' }>;

const DEFAULT_STOP_MS = 90_000;
const DEFAULT_START_MS = 90_000;
const WATCH_EVERY_MS = 200;
const TAIL_LINES = 10;

export interface ProgramStatus {
  name: string;
  state: string;
  description: string;
  pid: number | null;
}

/** One line of `supervisorctl status NAME`: "billing-worker   RUNNING   pid 4122, uptime 0:00:05". */
export function parseStatus(text: string): ProgramStatus | null {
  const line = text.split('\n').find((l) => /^\S+\s+[A-Z]+\b/.test(l));
  const m = line ? /^(\S+)\s+([A-Z]+)\s*(.*)$/.exec(line.trimEnd()) : null;
  if (!m) return null;
  const pid = /pid (\d+)/.exec(m[3] ?? '');
  return { name: m[1] as string, state: m[2] as string, description: (m[3] ?? '').trim(), pid: pid ? Number(pid[1]) : null };
}

/** supervisord itself could not be reached: what supervisorctl prints then. */
export function unreachable(text: string): boolean {
  return /no such file|refused connection|connection refused|could not find config file|Errno|SHUTDOWN_STATE|unix:\/\/.*(no such|refused)/i.test(text) && !/no such process/i.test(text);
}

export class SupervisorManager implements ServiceManager {
  readonly label: string;
  constructor(private readonly spec: Supervisor) {
    this.label = `supervisord program ${spec.program}`;
  }

  private ctl(): string[] {
    return ['supervisorctl', ...(this.spec.config ? ['-c', this.spec.config] : []), ...(this.spec.serverurl ? ['-s', this.spec.serverurl] : [])];
  }

  private program(ctx: ServiceContext, phase: Phase, release: string | null): string {
    return bindTemplate(this.spec.program, ctx.runtime(phase, release));
  }

  private async status(program: string, signal?: AbortSignal): Promise<{ ok: true; status: ProgramStatus } | { ok: false; reason: string; unreachable: boolean }> {
    const [file, ...args] = this.ctl();
    const r = await query(file as string, [...args, 'status', program], signal);
    const text = `${r.stdout}${r.stderr}`.trim();
    if (unreachable(text) || r.code === null) return { ok: false, reason: `supervisord is not reachable (${[file, ...args].join(' ')}): ${text || `exit ${r.code}`}`, unreachable: true };
    if (/no such process/i.test(text)) return { ok: false, reason: `supervisord knows no program ${program} (${text}) – check service.supervisor.program and its config`, unreachable: false };
    const status = parseStatus(text);
    if (!status) return { ok: false, reason: `cannot read supervisorctl status ${program}: ${text || `exit ${r.code}`}`, unreachable: false };
    return { ok: true, status };
  }

  private step(name: string, verb: string, program: string, timeoutMs: number): StepSpec {
    return { name, run: [...this.ctl(), verb, program], timeoutMs, env: {} };
  }

  async inspect(ctx: ServiceContext, signal: AbortSignal): Promise<Inspection> {
    const program = this.program(ctx, 'verify', null);
    const s = await this.status(program, signal);
    return s.ok ? { ok: true, warnings: [] } : { ok: false, reason: s.reason, warnings: [] };
  }

  async stop(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> {
    const program = this.program(ctx, phase, release);
    const r = await runStepAction(ctx, phase, this.step(`supervisorctl stop ${program}`, 'stop', program, this.spec.stopTimeoutMs ?? DEFAULT_STOP_MS), release, signal);
    const after = await this.status(program, signal);
    // "ERROR (not running)" is a stopped program: what matters is the state afterwards
    if (after.ok && !['RUNNING', 'STARTING', 'STOPPING', 'BACKOFF'].includes(after.status.state)) return null;
    if (!r.ok) return `supervisorctl stop ${program} ${describeStep(r)}`;
    return after.ok ? `${program} is still ${after.status.state} after supervisorctl stop` : after.reason;
  }

  async start(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<StartResult> {
    const program = this.program(ctx, phase, release);
    const t0 = performance.now();
    const r = await runStepAction(ctx, phase, this.step(`supervisorctl start ${program}`, 'start', program, this.spec.startTimeoutMs ?? DEFAULT_START_MS), release, signal);
    const after = await this.status(program, signal);
    if (!r.ok || !after.ok || after.status.state !== 'RUNNING') {
      const state = after.ok ? `${after.status.state}${after.status.description ? ` (${after.status.description})` : ''}` : after.reason;
      const tail = await this.tail(program, ctx);
      return { failure: `supervisorctl start ${program} ${r.ok ? 'returned' : describeStep(r)}; ${program} is ${state}${tail.length > 0 ? `; its log ends:\n${tail.map((l) => `  ${l}`).join('\n')}` : ''}`, watch: NO_WATCH };
    }
    return { failure: null, watch: this.watch(ctx, program, after.status, t0) };
  }

  private watch(ctx: ServiceContext, program: string, base: ProgramStatus, startedAt: number): ServiceWatch {
    const look = async (): Promise<WatchFailure | null> => {
      const now = await this.status(program);
      const after = `${((performance.now() - startedAt) / 1000).toFixed(1)}s after start`;
      let why: string | null = null;
      if (!now.ok) why = now.unreachable ? `${now.reason} ${after}` : null;
      else if (now.status.state !== 'RUNNING') why = `program ${program} is ${now.status.state}${now.status.description ? ` (${now.status.description})` : ''} ${after}`;
      else if (base.pid !== null && now.status.pid !== null && now.status.pid !== base.pid) why = `program ${program} was restarted by supervisord (pid ${base.pid} → ${now.status.pid}) ${after}`;
      return why ? { reason: why, evidence: await this.tail(program, ctx) } : null;
    };
    return pollingWatch(look, WATCH_EVERY_MS);
  }

  /** The last lines the program wrote (stderr first: that is where crashes speak), redacted. */
  private async tail(program: string, ctx: ServiceContext, lines = TAIL_LINES): Promise<string[]> {
    const [file, ...args] = this.ctl();
    const pick = async (stream: 'stderr' | 'stdout') => {
      const r = await query(file as string, [...args, 'tail', program, stream]);
      return r.code === 0 ? r.stdout.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '') : [];
    };
    const err = await pick('stderr');
    const out = err.length > 0 ? err : await pick('stdout');
    return out.slice(-lines).map((l) => ctx.redact(l));
  }

  async evidence(ctx: ServiceContext): Promise<EvidenceFile[]> {
    const program = this.program(ctx, 'done', null);
    const [file, ...args] = this.ctl();
    const [status, out, err] = await Promise.all([
      query(file as string, [...args, 'status']),
      query(file as string, [...args, 'tail', '-65536', program, 'stdout']),
      query(file as string, [...args, 'tail', '-65536', program, 'stderr']),
    ]);
    return [
      { name: 'supervisorctl-status.txt', text: ctx.redact(status.stdout + status.stderr) },
      { name: 'program-stdout.txt', text: ctx.redact(out.stdout) },
      { name: 'program-stderr.txt', text: ctx.redact(err.stdout) },
    ];
  }

  async live(signal?: AbortSignal): Promise<string | null> {
    if (this.spec.program.includes('${')) return null;
    const s = await this.status(this.spec.program, signal);
    return s.ok ? `${s.status.name}: ${s.status.state}${s.status.description ? ` (${s.status.description})` : ''}` : s.reason;
  }
}
