// nginx has no runtime API (open source): a slot is in rotation when its `server` line is in the upstream
// block. Each change rewrites the upstream file (temp + rename), runs the config test, reloads, and proves
// the reload took — `nginx -s reload` exits 0 even when the master then rejects the configuration (a bind
// failure: it keeps its old workers). Proof: the master (pidfile) started a new worker generation and every
// worker of the previous one exited or is "shutting down". A test or a reload that fails puts the previous
// file back. Draining = the old generations have exited; nginx cannot say which server their connections
// go to, so `sessions` in observe() counts old-generation workers still alive, for every slot.
import { constants, readFileSync, statSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../process/daemon.js';
import { descendants, isAlive, readPidfile, readProcStat } from '../process/group.js';
import { readAppended } from '../process/tail.js';
import { tellingLine } from '../process/telling-line.js';
import { describeCommand, describeResult, pause, runCommand, type CommandLine } from './command.js';
import { TrafficError, type AdminState, type ServerView, type TrafficProvider, type WaitResult } from './provider.js';

export interface NginxProviderSpec {
  /** the file holding the whole `upstream NAME { server …; }` block, included by nginx.conf */
  upstreamFile: string;
  upstream: string;
  /** slot → "host:port" as written in the upstream's `server` line */
  servers: Record<string, string>;
  /** config test, e.g. ["nginx", "-t"] */
  test: CommandLine;
  /** reload, e.g. ["nginx", "-s", "reload"] */
  reload: CommandLine;
  /** nginx's pid file: the master whose workers prove a reload */
  pidfile: string;
  /** a URL through nginx that must answer 2xx before waitUp succeeds */
  checkUrl?: string;
  /** nginx's error log: its new lines are quoted when a reload does not take */
  errorLog?: string;
  /** bound of the test and reload commands (default 30s) */
  timeoutMs?: number;
  /** how long the master may take to start the new worker generation (default 10s; a bind failure alone takes nginx ~2.5s of retries) */
  reloadTimeoutMs?: number;
}

export const NGINX_DEFAULTS = {
  timeoutMs: 30_000,
  reloadTimeoutMs: 10_000,
  pollMs: 25,
  checkTimeoutMs: 5_000,
  /** an [emerg] of the master stays its last log line this long before the reload counts as rejected */
  gaveUpGraceMs: 300,
} as const;

// a slot taken out keeps its line, parameters and all, as this comment: `ready` puts it back as it was
const PARKED = '# safe-restart: out of rotation: ';

interface Block {
  lines: string[];
  /** index of the `upstream NAME {` line */
  open: number;
  /** index of its closing `}` line */
  close: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The lines of `upstream NAME { … }` in text; null when there is no such block (one `}` per line, as nginx -T prints it). */
export function findUpstream(text: string, name: string): Block | null {
  const lines = text.split('\n');
  const head = new RegExp(`^\\s*upstream\\s+${escapeRegExp(name)}\\s*\\{\\s*(?:#.*)?$`);
  const open = lines.findIndex((l) => head.test(l));
  if (open < 0) return null;
  const close = lines.findIndex((l, i) => i > open && /^\s*\}\s*(?:#.*)?$/.test(l));
  return close < 0 ? null : { lines, open, close };
}

function serverLine(line: string): string | null {
  return /^\s*server\s+([^\s;]+)[^;]*;/.exec(line)?.[1] ?? null;
}

function parkedLine(line: string): string | null {
  const at = line.indexOf(PARKED);
  return at >= 0 && line.slice(0, at).trim() === '' ? serverLine(line.slice(at + PARKED.length)) : null;
}

/** Addresses of the `server` lines inside the block, in order. */
export function listedServers(text: string, name: string): string[] {
  const block = findUpstream(text, name);
  if (!block) return [];
  return block.lines.slice(block.open + 1, block.close).map(serverLine).filter((a): a is string => a !== null);
}

/** The file with `address` in (listed) or out of the upstream block; other lines stay as they are. */
export function renderUpstream(text: string, name: string, address: string, listed: boolean): string {
  const block = findUpstream(text, name);
  if (!block) throw new Error(`no \`upstream ${name} {\` block`);
  const lines = [...block.lines];
  const inside = (i: number): boolean => i > block.open && i < block.close;
  const live = lines.findIndex((l, i) => inside(i) && serverLine(l) === address);
  const parked = lines.findIndex((l, i) => inside(i) && parkedLine(l) === address);
  if (listed) {
    if (live >= 0) return text;
    if (parked >= 0) {
      const line = lines[parked] as string;
      lines[parked] = line.replace(PARKED, '');
    } else {
      lines.splice(block.close, 0, `    server ${address};`);
    }
  } else {
    if (live < 0) return text;
    const line = lines[live] as string;
    const indent = /^\s*/.exec(line)?.[0] ?? '';
    lines[live] = `${indent}${PARKED}${line.slice(indent.length)}`;
  }
  return lines.join('\n');
}

/** Live workers (and cache processes) of the master. */
function workersOf(master: number): number[] {
  return descendants(master);
}

/** nginx retitles a worker of an old generation "nginx: worker process is shutting down". */
function shuttingDown(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('shutting down');
  } catch {
    return false;
  }
}

/** "2026/12/02 01:54:27 [emerg] 9107#9107: bind() … failed" → "[emerg] bind() … failed" (also inside a longer text). */
export function withoutLogPrefix(text: string): string {
  return text.replace(/\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: (?:\*\d+ )?/g, '$1 ');
}

/** The master's last line in the error log text is an [emerg]: nginx logs "try again to bind()" after one it retries. */
export function masterGaveUp(log: string, master: number): boolean {
  const mine = log.split('\n').filter((l) => l.includes(` ${master}#`));
  return /\[emerg\]/.test(mine.at(-1) ?? '');
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export class NginxProvider implements TrafficProvider {
  readonly label: string;
  private readonly timeoutMs: number;
  private readonly reloadTimeoutMs: number;
  /** what this run asked for a slot out of rotation: drain and maint look the same to nginx */
  private readonly asked = new Map<string, AdminState>();
  /** workers of the generations this provider's reloads replaced */
  private readonly oldWorkers = new Set<number>();
  /** this provider has changed (or tried to change) the upstream file before */
  private touched = false;

  constructor(private readonly spec: NginxProviderSpec) {
    this.label = `nginx upstream ${spec.upstream} in ${spec.upstreamFile}`;
    this.timeoutMs = spec.timeoutMs ?? NGINX_DEFAULTS.timeoutMs;
    this.reloadTimeoutMs = spec.reloadTimeoutMs ?? NGINX_DEFAULTS.reloadTimeoutMs;
  }

  private address(slot: string): string {
    const address = this.spec.servers[slot];
    if (address === undefined) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `${this.label}: no server for slot ${slot} (known slots: ${Object.keys(this.spec.servers).join(', ')})`);
    return address;
  }

  private async read(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.spec.upstreamFile, 'utf8');
    } catch (error) {
      throw new TrafficError('SR_TRAFFIC_UNREACHABLE', `cannot read the nginx upstream file ${this.spec.upstreamFile}: ${(error as Error).message}`, { cause: error });
    }
    if (!findUpstream(text, this.spec.upstream)) throw new TrafficError('SR_TRAFFIC_CONFIG_INVALID', `${this.spec.upstreamFile} has no \`upstream ${this.spec.upstream} {\` block (one line for the opening, one for the closing brace)`);
    return text;
  }

  private master(): number | null {
    const pid = readPidfile(this.spec.pidfile);
    return pid !== null && isAlive(pid) ? pid : null;
  }

  /** Old-generation workers still alive: those our reloads replaced, and any the master retitled "shutting down". */
  private draining(): number[] {
    const master = this.master();
    // a recorded pid counts only while it is still the master's child (pids are reused)
    const pids = new Set([...this.oldWorkers].filter((p) => isAlive(p) && (master === null || readProcStat(p)?.ppid === master)));
    if (master !== null) for (const p of workersOf(master)) if (shuttingDown(p)) pids.add(p);
    return [...pids].sort((a, b) => a - b);
  }

  async inspect(signal: AbortSignal): Promise<{ ok: boolean; reason?: string; warnings: string[] }> {
    const warnings: string[] = [];
    let text: string;
    try {
      text = await this.read();
    } catch (error) {
      return { ok: false, reason: (error as Error).message, warnings };
    }
    try {
      await access(dirname(this.spec.upstreamFile), constants.W_OK);
    } catch (error) {
      return { ok: false, reason: `cannot write in ${dirname(this.spec.upstreamFile)} (${(error as NodeJS.ErrnoException).code}): the upstream file is replaced by a temporary file renamed over it`, warnings };
    }
    if (this.master() === null) return { ok: false, reason: `no running nginx master in the pid file ${this.spec.pidfile} (${readPidfile(this.spec.pidfile) ?? 'missing or empty'}) – a reload could not be proven`, warnings };
    const r = await runCommand(this.spec.test, { timeoutMs: this.timeoutMs, signal });
    if (r.code !== 0) return { ok: false, reason: `the nginx config test fails before any change: ${describeCommand(this.spec.test)} ${describeResult(r, this.timeoutMs)}`, warnings };
    const listed = listedServers(text, this.spec.upstream);
    if (!Object.values(this.spec.servers).some((a) => listed.includes(a))) {
      warnings.push(`upstream ${this.spec.upstream} lists none of the slots' servers (${Object.values(this.spec.servers).join(', ')}; it has ${listed.join(', ') || 'none'})`);
    }
    return { ok: true, warnings };
  }

  async observe(_signal?: AbortSignal): Promise<ServerView[]> {
    const listed = listedServers(await this.read(), this.spec.upstream);
    const alive = this.master() !== null;
    const sessions = this.draining().length;
    return Object.entries(this.spec.servers).map(([slot, address]) => {
      const inFile = listed.includes(address);
      const admin: AdminState = inFile ? 'ready' : this.asked.get(slot) === 'drain' ? 'drain' : 'maint';
      return { slot, server: address, status: !alive ? 'DOWN' : inFile ? 'UP' : 'MAINT', admin, sessions, queued: 0 };
    });
  }

  async set(slot: string, state: AdminState, signal: AbortSignal): Promise<void> {
    const address = this.address(slot);
    const before = await this.read();
    const next = renderUpstream(before, this.spec.upstream, address, state === 'ready');
    this.asked.set(slot, state);
    // drain → maint, or a slot already where it should be: nothing for nginx to do — except the first time. The file
    // may say what nginx does not run: a run killed between its rename and its reload leaves it so, and the recover
    // after it finds the file already as it wants it. So the first change of a run reloads even when the file stays.
    const first = !this.touched;
    this.touched = true;
    if (next === before && !first) return;
    const file = this.spec.upstreamFile;
    const restore = (): void => writeFileAtomic(file, before);
    if (next !== before) writeFileAtomic(file, next);

    const test = await runCommand(this.spec.test, { timeoutMs: this.timeoutMs, signal });
    if (test.code !== 0) {
      restore();
      throw new TrafficError(test.aborted ? 'SR_TRAFFIC_ABORTED' : 'SR_TRAFFIC_CONFIG_INVALID', `nginx rejected ${file} with ${address} ${state === 'ready' ? 'added' : 'removed'}: ${describeCommand(this.spec.test)} ${withoutLogPrefix(describeResult(test, this.timeoutMs))} – the previous file is restored, nothing was reloaded`);
    }

    const master = this.master();
    if (master === null) {
      restore();
      throw new TrafficError('SR_TRAFFIC_UNREACHABLE', `no running nginx master in ${this.spec.pidfile}: the reload of ${file} could not be proven – the previous file is restored`);
    }
    let proof: Awaited<ReturnType<NginxProvider['reloadAndProve']>>;
    try {
      proof = await this.reloadAndProve(master, signal);
    } catch (error) {
      // aborted after the reload was sent: nginx may still take it, so the restored file is reloaded too (bounded, not abortable)
      restore();
      await this.reloadAndProve(master, new AbortController().signal).catch(() => undefined);
      throw error;
    }
    if (proof.ok) {
      for (const p of proof.replaced) this.oldWorkers.add(p);
      return;
    }
    restore();
    const back = proof.reloaded ? await this.reloadAndProve(master, signal) : null;
    const afterRestore = back === null ? '' : back.ok ? ' and reloaded' : ' (nginx did not take that reload either)';
    throw new TrafficError(proof.reloaded ? 'SR_TRAFFIC_RELOAD_NOT_TAKEN' : 'SR_TRAFFIC_REFUSED', `${proof.detail} – the previous ${file} is restored${afterRestore}; nginx still serves the previous configuration`);
  }

  /** Runs the reload command, then waits until the master has a new worker generation and the previous one is gone or shutting down. */
  private async reloadAndProve(master: number, signal: AbortSignal): Promise<{ ok: boolean; reloaded: boolean; detail: string; replaced: number[] }> {
    const current = workersOf(master).filter((p) => !shuttingDown(p));
    const logOffset = this.spec.errorLog ? fileSize(this.spec.errorLog) : 0;
    const started = performance.now();
    const r = await runCommand(this.spec.reload, { timeoutMs: this.timeoutMs, signal });
    if (r.code !== 0) return { ok: false, reloaded: false, detail: `the nginx reload failed: ${describeCommand(this.spec.reload)} ${describeResult(r, this.timeoutMs)}`, replaced: [] };
    const deadline = started + this.reloadTimeoutMs;
    const newLog = (): string => (this.spec.errorLog ? readAppended(this.spec.errorLog, logOffset, 64 * 1024).bytes.toString('utf8') : '');
    let gaveUpAt: number | null = null;
    for (;;) {
      if (!isAlive(master)) return { ok: false, reloaded: true, detail: `the nginx master (pid ${master}) exited during the reload`, replaced: [] };
      const now = workersOf(master);
      const fresh = now.filter((p) => !current.includes(p));
      const stale = current.filter((p) => isAlive(p) && !shuttingDown(p));
      const elapsed = Math.round(performance.now() - started);
      if (fresh.length > 0 && stale.length === 0) return { ok: true, reloaded: true, detail: `reload took in ${elapsed}ms: new workers ${fresh.join(', ')}`, replaced: current };
      // the master's last word since the reload is an [emerg] (not followed by "try again to bind()"): it gave up
      gaveUpAt = fresh.length === 0 && masterGaveUp(newLog(), master) ? (gaveUpAt ?? performance.now()) : null;
      const gaveUp = gaveUpAt !== null && performance.now() - gaveUpAt >= NGINX_DEFAULTS.gaveUpGraceMs;
      if (gaveUp || performance.now() >= deadline) {
        const log = withoutLogPrefix(tellingLine(newLog()));
        const why = log ? `; its error log says: ${log}` : this.spec.errorLog ? '' : '; see its error log';
        return { ok: false, reloaded: true, detail: `nginx did not take the new configuration: \`${describeCommand(this.spec.reload)}\` exited 0, but after ${elapsed}ms the master (pid ${master}) still runs its workers ${stale.join(', ') || current.join(', ')} and started ${fresh.length === 0 ? 'none' : `only ${fresh.join(', ')}`}${why}`, replaced: [] };
      }
      await pause(NGINX_DEFAULTS.pollMs, signal);
    }
  }

  async waitUp(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    const address = this.address(slot);
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    let last = '';
    for (;;) {
      const listed = listedServers(await this.read(), this.spec.upstream).includes(address);
      if (!listed) return { ok: false, detail: `${slot} (${address}) is not in upstream ${this.spec.upstream} in ${this.spec.upstreamFile}`, elapsedMs: elapsed() };
      const master = this.master();
      if (master === null) last = `no running nginx master in ${this.spec.pidfile}`;
      else if (!this.spec.checkUrl) return { ok: true, detail: `${slot} (${address}) in upstream ${this.spec.upstream}, reload proven (nginx master ${master})`, elapsedMs: elapsed() };
      else {
        const answer = await this.check(this.spec.checkUrl, Math.min(NGINX_DEFAULTS.checkTimeoutMs, Math.max(1, timeoutMs - elapsed())), signal);
        if (answer.ok) return { ok: true, detail: `${slot} (${address}) in upstream ${this.spec.upstream}, reload proven, GET ${this.spec.checkUrl} → ${answer.detail} after ${elapsed()}ms`, elapsedMs: elapsed() };
        last = `GET ${this.spec.checkUrl} → ${answer.detail}`;
      }
      if (elapsed() >= timeoutMs) return { ok: false, detail: `${slot} not UP after ${elapsed()}ms: ${last}`, elapsedMs: elapsed() };
      await pause(Math.min(100, Math.max(0, timeoutMs - elapsed())), signal);
    }
  }

  private async check(url: string, timeoutMs: number, signal: AbortSignal): Promise<{ ok: boolean; detail: string }> {
    try {
      const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: 'manual' });
      await res.arrayBuffer().catch(() => undefined);
      return { ok: res.status >= 200 && res.status < 300, detail: String(res.status) };
    } catch (error) {
      if (signal.aborted) throw new TrafficError('SR_TRAFFIC_ABORTED', `GET ${url}: aborted`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { ok: false, detail: cause?.code ?? cause?.message ?? (error as Error).message };
    }
  }

  async waitDrained(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    const address = this.address(slot);
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);
    if (listedServers(await this.read(), this.spec.upstream).includes(address)) {
      return { ok: false, detail: `${slot} (${address}) is still in upstream ${this.spec.upstream}: nginx sends it new requests, it cannot drain`, elapsedMs: 0 };
    }
    const first = this.draining();
    for (;;) {
      const left = this.draining();
      if (left.length === 0) {
        const which = first.length > 0 ? `the old nginx workers (${first.join(', ')}) exited` : 'no old nginx worker left';
        return { ok: true, detail: `${slot} drained after ${elapsed()}ms: ${which}`, elapsedMs: elapsed() };
      }
      if (elapsed() >= timeoutMs) {
        return { ok: false, detail: `${left.length} old nginx worker${left.length === 1 ? '' : 's'} (${left.join(', ')}) still alive after ${elapsed()}ms, holding connections opened before the switch (worker_shutdown_timeout bounds them)`, elapsedMs: elapsed() };
      }
      await pause(Math.min(NGINX_DEFAULTS.pollMs * 2, Math.max(0, timeoutMs - elapsed())), signal);
    }
  }

  async snapshot(_signal?: AbortSignal): Promise<string> {
    return this.read();
  }
}
