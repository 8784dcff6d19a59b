// A systemd unit: inspected before anything is touched (loaded, not masked; its own timeouts, type and start
// limits read), stopped and started with systemctl (reset-failed before every start, so a start limit tripped by
// a crashing release cannot refuse the rollback), watched while the release is proven (ActiveState, MainPID,
// NRestarts, InvocationID), and its journal for this run's invocations kept as evidence.
import { execFile } from 'node:child_process';
import type { ServiceSpec, StepSpec } from '../recipe/types.js';
import type { Phase } from '../report/events.js';
import { bindTemplate } from '../recipe/runtime-vars.js';
import { describeStep, runStepAction } from '../runner/actions.js';
import type { EvidenceFile, Inspection, ServiceContext, ServiceManager, StartResult } from './manager.js';
import type { ServiceWatch, WatchFailure } from './watch.js';
import { NO_WATCH, pollingWatch } from './watch.js';

type Systemd = Extract<ServiceSpec, { kind: 'systemd' }>;

// what we add to the unit's own timeouts: systemctl's own start-up and the job's bookkeeping
const MARGIN_MS = 5_000;
// a unit whose timeout is infinity is still bounded by us
const INFINITE_FALLBACK_MS = 15 * 60_000;
const QUERY_TIMEOUT_MS = 10_000;
const WATCH_EVERY_MS = 200;
const JOURNAL_LINES = 10;

const INSPECT_PROPS = ['LoadState', 'LoadError', 'ActiveState', 'SubState', 'Type', 'Restart', 'RestartUSec', 'TimeoutStartUSec', 'TimeoutStopUSec', 'StartLimitBurst', 'StartLimitIntervalUSec', 'MainPID', 'InvocationID'];
const WATCH_PROPS = ['ActiveState', 'SubState', 'MainPID', 'NRestarts', 'ExecMainStatus', 'ExecMainCode', 'InvocationID', 'Result'];

export type Props = Record<string, string>;

export interface QueryResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A read-only query (show, status, journalctl): changes nothing, so it is not journaled. */
export function query(file: string, args: string[], signal?: AbortSignal, timeoutMs = QUERY_TIMEOUT_MS): Promise<QueryResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, ...(signal ? { signal } : {}), env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0', LC_ALL: 'C' } }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (error && typeof (error as { code?: unknown }).code === 'string' ? `${(error as Error).message}` : '')) });
    });
  });
}

/** `systemctl show` output → properties. */
export function parseProps(text: string): Props {
  const props: Props = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return props;
}

const SPAN_UNITS: Record<string, number> = { us: 0.001, usec: 0.001, ms: 1, msec: 1, s: 1000, sec: 1000, min: 60_000, m: 60_000, h: 3_600_000, hr: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_629_800_000, y: 31_557_600_000 };

/** systemd's time span as `systemctl show` prints it ("1min 30s", "90s", "500ms", "infinity", or plain µs) → ms; null = infinite/unknown. */
export function parseTimespan(text: string | undefined): number | null {
  if (text === undefined || text === '' || text === 'infinity') return null;
  if (/^\d+$/.test(text)) return Number(text) / 1000;
  let total = 0;
  for (const part of text.trim().split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)([a-zA-Z]+)$/.exec(part);
    const unit = m ? SPAN_UNITS[m[2] as string] : undefined;
    if (!m || unit === undefined) return null;
    total += Number(m[1]) * unit;
  }
  return Math.round(total);
}

const EXIT_NAMES: Record<number, string> = { 0: 'SUCCESS', 1: 'FAILURE', 2: 'INVALIDARGUMENT', 3: 'NOTIMPLEMENTED', 4: 'NOPERMISSION', 5: 'NOTINSTALLED', 6: 'NOTCONFIGURED', 7: 'NOTRUNNING', 200: 'CHDIR', 203: 'EXEC', 217: 'USER', 226: 'NAMESPACE' };
const SIGNAL_NAMES: Record<number, string> = { 1: 'HUP', 2: 'INT', 6: 'ABRT', 9: 'KILL', 11: 'SEGV', 13: 'PIPE', 15: 'TERM' };

/** "status=1/FAILURE" or "signal=KILL", as systemctl status words it. */
export function describeExit(p: Props): string {
  const status = Number(p.ExecMainStatus ?? 0);
  // ExecMainCode: CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3
  const code = Number(p.ExecMainCode ?? 0);
  if (code === 2 || code === 3) return `signal=${SIGNAL_NAMES[status] ?? status}${code === 3 ? ' (core dumped)' : ''}`;
  return `status=${status}/${EXIT_NAMES[status] ?? String(status)}`;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** What, in the properties seen now, says the unit failed since `base`; null while it is healthy. */
export function unitFailure(unit: string, base: Props, now: Props, elapsedMs: number): string | null {
  const after = `${seconds(elapsedMs)} after start`;
  if (now.ActiveState === 'failed') return `unit ${unit} failed: ${describeExit(now)} ${after}${now.Result && now.Result !== 'success' ? ` (result ${now.Result})` : ''}`;
  if (now.SubState === 'auto-restart' || Number(now.NRestarts ?? 0) > Number(base.NRestarts ?? 0)) {
    return `unit ${unit} restarted by systemd (NRestarts ${base.NRestarts ?? 0} → ${now.NRestarts ?? '?'}): the process exited with ${describeExit(now)} ${after}`;
  }
  if (now.ActiveState === 'inactive' || now.ActiveState === 'deactivating') return `unit ${unit} stopped (${now.ActiveState}/${now.SubState}): ${describeExit(now)} ${after}`;
  if (base.InvocationID && now.InvocationID && now.InvocationID !== base.InvocationID) return `unit ${unit} was started again (invocation ${base.InvocationID.slice(0, 8)} → ${now.InvocationID.slice(0, 8)}) ${after}`;
  if (base.MainPID && base.MainPID !== '0' && now.MainPID && now.MainPID !== '0' && now.MainPID !== base.MainPID) return `unit ${unit}'s MainPID changed from ${base.MainPID} to ${now.MainPID} ${after}`;
  return null;
}

export class SystemdManager implements ServiceManager {
  readonly label: string;
  /** every invocation this run started: their journal lines are the evidence */
  private readonly invocations = new Set<string>();
  private inspected: Props | null = null;

  constructor(private readonly spec: Systemd) {
    this.label = `systemd unit ${spec.unit}`;
  }

  private unit(ctx: ServiceContext, phase: Phase, release: string | null): string {
    return bindTemplate(this.spec.unit, ctx.runtime(phase, release));
  }

  private async show(unit: string, props: string[], signal?: AbortSignal): Promise<{ ok: true; props: Props } | { ok: false; reason: string }> {
    const r = await query('systemctl', ['show', unit, '-p', props.join(',')], signal);
    if (r.code !== 0) return { ok: false, reason: `systemctl show ${unit} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}` };
    return { ok: true, props: parseProps(r.stdout) };
  }

  async inspect(ctx: ServiceContext, signal: AbortSignal): Promise<Inspection> {
    const gatesTimeoutMs = ctx.gatesTimeoutMs;
    const unit = this.unit(ctx, 'verify', null);
    const shown = await this.show(unit, INSPECT_PROPS, signal);
    if (!shown.ok) return { ok: false, reason: `cannot talk to systemd about ${unit}: ${shown.reason}`, warnings: [] };
    const p = shown.props;
    this.inspected = p;
    if (p.LoadState === 'masked') return { ok: false, reason: `systemd unit ${unit} is masked (LoadState=masked): it cannot be started – unmask it first`, warnings: [] };
    if (p.LoadState !== 'loaded') {
      const why = p.LoadError ? `: ${p.LoadError.replace(/^[^ ]+ "/, '').replace(/"$/, '')}` : '';
      return { ok: false, reason: `systemd unit ${unit} is not loaded (LoadState=${p.LoadState ?? '?'}${why}) – check the unit name in service.systemd`, warnings: [] };
    }
    return { ok: true, warnings: this.warnings(unit, p, gatesTimeoutMs) };
  }

  /** Where the recipe cannot work as written: said in preflight, plan, validate --live and run. */
  warnings(unit: string, p: Props, gatesTimeoutMs: number): string[] {
    const out: string[] = [];
    const stopUnit = parseTimespan(p.TimeoutStopUSec);
    if (this.spec.stopTimeoutMs !== null && stopUnit !== null && this.spec.stopTimeoutMs < stopUnit) {
      out.push(`service.stop_timeout (${seconds(this.spec.stopTimeoutMs)}) is shorter than ${unit}'s TimeoutStopSec (${seconds(stopUnit)}): systemd keeps stopping after it, so the stop waits for systemd, up to ${seconds(stopUnit + MARGIN_MS)}`);
    }
    if (p.Type === 'simple') {
      out.push(`${unit} has Type=simple: systemctl start returns as soon as the process is forked, so a start cannot fail; the watch (ActiveState, MainPID, NRestarts) catches a crash during the gates. Type=notify or Type=exec reports a failed start at once`);
    }
    const burst = Number(p.StartLimitBurst ?? 0);
    const interval = parseTimespan(p.StartLimitIntervalUSec);
    const restartSec = parseTimespan(p.RestartUSec) ?? 100;
    if (p.Restart && p.Restart !== 'no' && burst > 0 && interval !== null && gatesTimeoutMs > 0) {
      const restartsInGates = Math.floor(Math.min(gatesTimeoutMs, interval) / Math.max(restartSec, 1));
      if (restartsInGates >= burst) {
        out.push(`${unit} has Restart=${p.Restart} (RestartSec ${seconds(restartSec)}) and StartLimitBurst=${burst} in ${seconds(interval)}: a crashing release can exhaust the start limit inside the gates' ${seconds(gatesTimeoutMs)}; safe-restart fails the gates at the first restart and runs reset-failed before every start, so the rollback still starts`);
      }
    }
    return out;
  }

  private bound(kind: 'stop' | 'start', p: Props | null): number {
    const own = parseTimespan(kind === 'stop' ? p?.TimeoutStopUSec : p?.TimeoutStartUSec);
    const ours = kind === 'stop' ? this.spec.stopTimeoutMs : this.spec.startTimeoutMs;
    // never end a stop while systemd is still stopping: the unit's own timeout wins over a shorter one of ours
    if (own === null) return ours ?? INFINITE_FALLBACK_MS;
    return Math.max(ours ?? 0, own + MARGIN_MS);
  }

  private step(name: string, argv: string[], timeoutMs: number): StepSpec {
    return { name, run: argv, timeoutMs, env: { SYSTEMD_PAGER: '', LC_ALL: 'C' } };
  }

  async stop(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null> {
    const unit = this.unit(ctx, phase, release);
    if (this.spec.reload) {
      ctx.journal.write({ type: 'note', phase, detail: `reload: ${unit} keeps running; it is reloaded after the release switch` });
      return null;
    }
    const shown = await this.show(unit, INSPECT_PROPS, signal);
    const p = shown.ok ? shown.props : this.inspected;
    const boundMs = this.bound('stop', p);
    const started = performance.now();
    const r = await runStepAction(ctx, phase, this.step(`systemctl stop ${unit}`, ['systemctl', 'stop', unit], boundMs), release, signal);
    if (!r.ok) return `systemctl stop ${unit} ${describeStep(r)}${await this.journalSuffix(unit, ctx)}`;
    // systemctl waited for the stop job; make sure the unit is really down and its process gone
    for (;;) {
      const now = await this.show(unit, ['ActiveState', 'SubState', 'MainPID'], signal);
      if (now.ok && (now.props.ActiveState === 'inactive' || now.props.ActiveState === 'failed') && (now.props.MainPID ?? '0') === '0') return null;
      if (signal.aborted || performance.now() - started > boundMs) {
        const state = now.ok ? `${now.props.ActiveState}/${now.props.SubState}, MainPID ${now.props.MainPID}` : now.reason;
        return `${unit} is still ${state} after systemctl stop (${seconds(performance.now() - started)})`;
      }
      await new Promise((res) => setTimeout(res, WATCH_EVERY_MS));
    }
  }

  async start(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<StartResult> {
    const unit = this.unit(ctx, phase, release);
    const before = await this.show(unit, [...INSPECT_PROPS, ...WATCH_PROPS], signal);
    const p = before.ok ? before.props : this.inspected;
    const t0 = performance.now();
    if (this.spec.reload) return this.reload(ctx, phase, release, unit, p, signal);
    // a start limit tripped by a crashing release must not refuse the next start (the rollback's, recover's)
    const reset = await runStepAction(ctx, phase, this.step(`systemctl reset-failed ${unit}`, ['systemctl', 'reset-failed', unit], QUERY_TIMEOUT_MS), release, signal);
    if (!reset.ok) ctx.emit({ kind: 'warning', phase, message: ctx.redact(`systemctl reset-failed ${unit} ${describeStep(reset)}`) });
    const r = await runStepAction(ctx, phase, this.step(`systemctl start ${unit}`, ['systemctl', 'start', unit], this.bound('start', p)), release, signal);
    const after = await this.show(unit, WATCH_PROPS, signal);
    if (after.ok && after.props.InvocationID) this.invocations.add(after.props.InvocationID);
    if (!r.ok) {
      const state = after.ok ? `: ${unitFailure(unit, {}, after.props, performance.now() - t0) ?? `${after.props.ActiveState}/${after.props.SubState}`}` : '';
      return { failure: `systemctl start ${unit} ${describeStep(r)}${state}${await this.journalSuffix(unit, ctx)}`, watch: NO_WATCH };
    }
    if (!after.ok) return { failure: `${unit} started, but ${after.reason}`, watch: NO_WATCH };
    const early = unitFailure(unit, { ...after.props, NRestarts: before.ok ? (before.props.NRestarts ?? '0') : '0' }, after.props, performance.now() - t0);
    if (early) return { failure: `${early}${await this.journalSuffix(unit, ctx)}`, watch: NO_WATCH };
    return { failure: null, watch: this.watch(ctx, unit, after.props, t0) };
  }

  private async reload(ctx: ServiceContext, phase: Phase, release: string | null, unit: string, before: Props | null, signal: AbortSignal): Promise<StartResult> {
    const t0 = performance.now();
    const mainPid = before?.MainPID ?? '0';
    if (before?.ActiveState !== 'active') return { failure: `reload: ${unit} is not running (${before?.ActiveState ?? 'unknown'}/${before?.SubState ?? '?'}) – nothing to reload`, watch: NO_WATCH };
    if (before.InvocationID) this.invocations.add(before.InvocationID);
    // systemctl reload waits for the reload job (ExecReload) to finish
    const r = await runStepAction(ctx, phase, this.step(`systemctl reload ${unit}`, ['systemctl', 'reload', unit], this.bound('start', before)), release, signal);
    if (!r.ok) return { failure: `systemctl reload ${unit} ${describeStep(r)}${await this.journalSuffix(unit, ctx)}`, watch: NO_WATCH };
    const after = await this.show(unit, WATCH_PROPS, signal);
    if (!after.ok) return { failure: `${unit} reloaded, but ${after.reason}`, watch: NO_WATCH };
    if (after.props.MainPID !== mainPid) return { failure: `reload of ${unit} replaced its main process (MainPID ${mainPid} → ${after.props.MainPID}): a reload must keep it${await this.journalSuffix(unit, ctx)}`, watch: NO_WATCH };
    const failed = unitFailure(unit, before, after.props, performance.now() - t0);
    if (failed) return { failure: `${failed}${await this.journalSuffix(unit, ctx)}`, watch: NO_WATCH };
    return { failure: null, watch: this.watch(ctx, unit, after.props, t0) };
  }

  private watch(ctx: ServiceContext, unit: string, base: Props, startedAt: number): ServiceWatch {
    const look = async (): Promise<WatchFailure | null> => {
      const now = await this.show(unit, WATCH_PROPS);
      if (!now.ok) return null;
      if (now.props.InvocationID) this.invocations.add(now.props.InvocationID);
      const why = unitFailure(unit, base, now.props, performance.now() - startedAt);
      return why ? { reason: why, evidence: await this.journalLines(unit, ctx, JOURNAL_LINES) } : null;
    };
    return pollingWatch(look, WATCH_EVERY_MS);
  }

  /** This run's journal lines of the unit: its invocations when known, else since the run started. */
  private async journalLines(unit: string, ctx: ServiceContext, lines: number): Promise<string[]> {
    // the service's own output carries _SYSTEMD_INVOCATION_ID, systemd's words about it INVOCATION_ID
    const matches = [...this.invocations].flatMap((id) => [`_SYSTEMD_INVOCATION_ID=${id}`, `INVOCATION_ID=${id}`]).flatMap((m, i) => (i === 0 ? [m] : ['+', m]));
    const args = matches.length > 0 ? ['--no-pager', '-o', 'short-iso', '-n', String(lines), ...matches] : ['--no-pager', '-o', 'short-iso', '-n', String(lines), '-u', unit, '--since', `@${Math.floor(ctx.runStartedAt.getTime() / 1000)}`];
    const r = await query('journalctl', args);
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('-- '))
      .map((l) => ctx.redact(l));
  }

  private async journalSuffix(unit: string, ctx: ServiceContext): Promise<string> {
    const lines = await this.journalLines(unit, ctx, JOURNAL_LINES);
    return lines.length > 0 ? `; its journal ends:\n${lines.map((l) => `  ${l}`).join('\n')}` : '';
  }

  async evidence(ctx: ServiceContext): Promise<EvidenceFile[]> {
    const unit = this.unit(ctx, 'done', null);
    const [status, show, journal] = await Promise.all([
      query('systemctl', ['status', unit, '--no-pager', '-l', '-n', '20']),
      query('systemctl', ['show', unit]),
      this.journalLines(unit, ctx, 2000),
    ]);
    return [
      { name: 'systemctl-status.txt', text: ctx.redact(status.stdout + status.stderr) },
      { name: 'systemctl-show.txt', text: ctx.redact(show.stdout) },
      { name: 'journal.txt', text: `${journal.join('\n')}\n` },
    ];
  }

  async live(signal?: AbortSignal): Promise<string | null> {
    if (this.spec.unit.includes('${')) return null;
    const shown = await this.show(this.spec.unit, ['ActiveState', 'SubState', 'MainPID', 'InvocationID', 'ActiveEnterTimestamp'], signal);
    if (!shown.ok) return null;
    const p = shown.props;
    return `${this.spec.unit}: ${p.ActiveState} (${p.SubState}), MainPID ${p.MainPID}${p.ActiveEnterTimestamp ? `, since ${p.ActiveEnterTimestamp}` : ''}`;
  }
}
