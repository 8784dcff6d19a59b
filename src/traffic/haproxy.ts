// HAProxy through its runtime API on the stats socket (management guide, "Unix Socket commands"): one command
// per connection, as `echo "cmd" | socat SOCKET stdio` does — write "cmd\n", read until HAProxy closes.
// `set server BE/SRV state ready|drain|maint` moves a slot; `show stat` (CSV) says what HAProxy sees; an
// agent-check is paused around a drain (an agent answering "ready" would undo it within one agent interval);
// and `show servers state` is written to the server-state-file after every change, so a reload keeps it.
import { connect } from 'node:net';
import { writeFileAtomic } from '../process/daemon.js';
import { pause } from './command.js';
import { TrafficError, type AdminState, type ServerView, type TrafficProvider, type WaitResult } from './provider.js';

export interface HaproxyProviderSpec {
  /** the stats socket, `stats socket PATH mode 600 level admin` */
  socket: string;
  backend: string;
  /** slot → HAProxy server name in the backend */
  servers: Record<string, string>;
  /** the path the HAProxy config names in `server-state-file` (with `load-server-state-from-file global`) */
  stateFile?: string;
  /** bound of one command on the socket (default 5s) */
  timeoutMs?: number;
  /** how often waitUp/waitDrained ask (default 50ms; 2.6 has no blocking wait) */
  pollMs?: number;
}

export const HAPROXY_DEFAULTS = { timeoutMs: 5_000, pollMs: 50 } as const;

// show servers state, srv_agent_state: CHK_ST_CONFIGURED
const CHECK_CONFIGURED = 0x02;
// show stat, check_status of a health check that passed (L4OK tcp, L6OK ssl, L7OK/L7OKC http)
const CHECK_PASSED = /^(?:L4OK|L6OK|L7OK|L7OKC)$/;

/** One command on an HAProxy CLI socket; resolves with HAProxy's whole answer. Throws TrafficError naming the socket and the command. */
export function haproxyCommand(socket: string, command: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? HAPROXY_DEFAULTS.timeoutMs;
  const where = `haproxy socket ${socket}, "${command}"`;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new TrafficError('SR_TRAFFIC_ABORTED', `${where}: aborted`));
    const chunks: Buffer[] = [];
    let settled = false;
    const conn = connect({ path: socket });
    const settle = (error: TrafficError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      conn.destroy();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onAbort = (): void => settle(new TrafficError('SR_TRAFFIC_ABORTED', `${where}: aborted`));
    const timer = setTimeout(() => settle(new TrafficError('SR_TRAFFIC_TIMEOUT', `${where}: no complete answer within ${timeoutMs}ms`)), timeoutMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('connect', () => conn.write(`${command}\n`));
    conn.on('data', (chunk: Buffer) => chunks.push(chunk));
    conn.on('end', () => settle(null));
    conn.on('close', () => settle(null));
    conn.on('error', (error: NodeJS.ErrnoException) => {
      // a reset after HAProxy wrote its answer is still an answer
      if (chunks.length > 0 && error.code === 'ECONNRESET') return settle(null);
      settle(new TrafficError('SR_TRAFFIC_UNREACHABLE', `${where}: cannot talk to HAProxy (${error.code ?? error.message}) – is it running, and is this its stats socket?`, { cause: error }));
    });
  });
}

/** `show stat` CSV → one record per line, keyed by the header ("# pxname,svname,qcur,…"). */
export function parseStat(csv: string): Array<Record<string, string>> {
  const lines = csv.split('\n');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return [];
  const names = header.slice(2).split(',');
  return lines
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .map((l) => {
      const values = l.split(',');
      return Object.fromEntries(names.map((name, i) => [name, values[i] ?? '']));
    });
}

/** `show servers state` → one record per server, keyed by the header ("# be_id be_name srv_id srv_name …"). */
export function parseServersState(text: string): Array<Record<string, string>> {
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('# be_id'));
  if (!header) return [];
  const names = header.slice(2).trim().split(/\s+/);
  return lines
    .slice(lines.indexOf(header) + 1)
    .filter((l) => l.trim().length > 0 && !l.startsWith('#'))
    .map((l) => {
      const values = l.trim().split(/\s+/);
      return Object.fromEntries(names.map((name, i) => [name, values[i] ?? '']));
    });
}

/** HAProxy's status word → the administrative state it implies: MAINT…, DRAIN… or in rotation. */
export function adminOf(status: string): AdminState {
  if (status.startsWith('MAINT')) return 'maint';
  if (status.startsWith('DRAIN')) return 'drain';
  return 'ready';
}

function inRotation(status: string): boolean {
  return status.startsWith('UP') || status === 'no check';
}

function quote(answer: string): string {
  const text = answer.trim();
  return text ? JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}…` : text) : 'nothing';
}

export class HaproxyProvider implements TrafficProvider {
  readonly label: string;
  private readonly timeoutMs: number;
  private readonly pollMs: number;

  constructor(private readonly spec: HaproxyProviderSpec) {
    this.label = `haproxy backend ${spec.backend} via ${spec.socket}`;
    this.timeoutMs = spec.timeoutMs ?? HAPROXY_DEFAULTS.timeoutMs;
    this.pollMs = spec.pollMs ?? HAPROXY_DEFAULTS.pollMs;
    // a name is pasted into a CLI line: whitespace or ';' would end the command or start another
    for (const name of [spec.backend, ...Object.values(spec.servers)]) {
      if (!/^[^\s;\\]+$/.test(name)) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `${this.label}: "${name}" cannot be an HAProxy backend or server name (whitespace, ';' or '\\')`);
    }
  }

  private ask(command: string, signal?: AbortSignal): Promise<string> {
    return haproxyCommand(this.spec.socket, command, { timeoutMs: this.timeoutMs, ...(signal ? { signal } : {}) });
  }

  /** A command that answers nothing when it worked (set server, disable agent …); anything else is HAProxy's refusal. */
  private async change(command: string, signal: AbortSignal): Promise<void> {
    const answer = await this.ask(command, signal);
    if (answer.trim() !== '') throw new TrafficError('SR_TRAFFIC_REFUSED', `haproxy socket ${this.spec.socket}, "${command}": HAProxy answered ${quote(answer)}`);
  }

  private server(slot: string): string {
    const server = this.spec.servers[slot];
    if (server === undefined) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `${this.label}: no server for slot ${slot} (known slots: ${Object.keys(this.spec.servers).join(', ')})`);
    return server;
  }

  private async stat(signal: AbortSignal): Promise<Map<string, Record<string, string>>> {
    const answer = await this.ask('show stat', signal);
    const rows = parseStat(answer);
    if (rows.length === 0) throw new TrafficError('SR_TRAFFIC_REFUSED', `haproxy socket ${this.spec.socket}, "show stat": HAProxy answered ${quote(answer)}, not its CSV`);
    return new Map(rows.filter((r) => r.pxname === this.spec.backend).map((r) => [r.svname as string, r]));
  }

  private async row(slot: string, signal: AbortSignal): Promise<Record<string, string>> {
    const server = this.server(slot);
    const row = (await this.stat(signal)).get(server);
    if (!row) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `haproxy socket ${this.spec.socket}, "show stat": no server ${this.spec.backend}/${server} (slot ${slot})`);
    return row;
  }

  private async serversState(signal: AbortSignal): Promise<{ answer: string; rows: Array<Record<string, string>> }> {
    const command = `show servers state ${this.spec.backend}`;
    const answer = await this.ask(command, signal);
    const rows = parseServersState(answer);
    if (!/^\d+\n# be_id/.test(answer)) throw new TrafficError('SR_TRAFFIC_REFUSED', `haproxy socket ${this.spec.socket}, "${command}": HAProxy answered ${quote(answer)}`);
    return { answer, rows };
  }

  private async agentConfigured(server: string, signal: AbortSignal): Promise<boolean> {
    const row = (await this.serversState(signal)).rows.find((r) => r.srv_name === server);
    return (Number(row?.srv_agent_state ?? 0) & CHECK_CONFIGURED) !== 0;
  }

  /** "admin", "operator" or "user"; older HAProxy without `show cli level`: a refused admin-only command says it. */
  private async level(signal: AbortSignal): Promise<{ level: string; command: string; answer: string }> {
    let command = 'show cli level';
    let answer = await this.ask(command, signal);
    const word = answer.trim();
    if (word === 'admin' || word === 'operator' || word === 'user') return { level: word, command, answer };
    // admin-only, and harmless: HAProxy checks the level before it looks the server up, and there is no such server
    command = `set server ${this.spec.backend}/.safe-restart-level-probe state ready`;
    answer = await this.ask(command, signal);
    return { level: /permission denied/i.test(answer) ? 'operator or user' : 'admin', command, answer };
  }

  async inspect(signal: AbortSignal): Promise<{ ok: boolean; reason?: string; warnings: string[] }> {
    const warnings: string[] = [];
    const socket = this.spec.socket;
    try {
      const level = await this.level(signal);
      if (level.level !== 'admin') {
        return { ok: false, reason: `haproxy socket ${socket} is at level ${level.level} ("${level.command}" answered ${quote(level.answer)}) – safe-restart changes server states, so the stats socket needs \`level admin\` (stats socket ${socket} mode 600 level admin)`, warnings };
      }
      const command = `show servers state ${this.spec.backend}`;
      const answer = await this.ask(command, signal);
      if (!/^\d+\n# be_id/.test(answer)) {
        const backends = (await this.ask('show backend', signal)).split('\n').filter((l) => l && !l.startsWith('#'));
        return { ok: false, reason: `haproxy socket ${socket}, "${command}": HAProxy answered ${quote(answer)} – its backends are ${backends.join(', ') || 'none'}`, warnings };
      }
      const rows = parseServersState(answer);
      const known = rows.map((r) => r.srv_name);
      for (const [slot, server] of Object.entries(this.spec.servers)) {
        const row = rows.find((r) => r.srv_name === server);
        if (!row) return { ok: false, reason: `haproxy backend ${this.spec.backend} has no server ${server} (slot ${slot}; "${command}" lists ${known.join(', ') || 'none'})`, warnings };
        if ((Number(row.srv_agent_state) & CHECK_CONFIGURED) !== 0) {
          warnings.push(`${this.spec.backend}/${server} has an agent-check: safe-restart runs \`disable agent ${this.spec.backend}/${server}\` before a drain or maint and \`enable agent\` after ready (an agent answering "ready" would undo a drain)`);
        }
      }
      const stats = await this.stat(signal);
      for (const server of Object.values(this.spec.servers)) {
        if (!stats.has(server)) return { ok: false, reason: `haproxy socket ${socket}, "show stat": no line for ${this.spec.backend}/${server}`, warnings };
      }
    } catch (error) {
      return { ok: false, reason: (error as Error).message, warnings };
    }
    if (!this.spec.stateFile) warnings.push(`no state_file for ${this.label}: a reload of HAProxy during or after the run forgets the drain/maint states set at runtime (configure server-state-file and load-server-state-from-file, and name the file here)`);
    return { ok: true, warnings };
  }

  async observe(signal: AbortSignal): Promise<ServerView[]> {
    const stats = await this.stat(signal);
    return Object.entries(this.spec.servers).map(([slot, server]) => {
      const row = stats.get(server);
      if (!row) throw new TrafficError('SR_TRAFFIC_UNKNOWN_SLOT', `haproxy socket ${this.spec.socket}, "show stat": no server ${this.spec.backend}/${server} (slot ${slot})`);
      const status = row.status ?? '';
      return { slot, server: `${this.spec.backend}/${server}`, status, admin: adminOf(status), sessions: Number(row.scur || 0), queued: Number(row.qcur || 0) };
    });
  }

  async responses5xx(slot: string, signal: AbortSignal): Promise<number | null> {
    const row = (await this.stat(signal)).get(this.server(slot));
    const n = row ? Number(row.hrsp_5xx) : Number.NaN;
    return Number.isFinite(n) ? n : null;
  }

  async set(slot: string, state: AdminState, signal: AbortSignal): Promise<void> {
    const target = `${this.spec.backend}/${this.server(slot)}`;
    const agent = await this.agentConfigured(this.server(slot), signal);
    if (agent && state !== 'ready') await this.change(`disable agent ${target}`, signal);
    await this.change(`set server ${target} state ${state}`, signal);
    if (agent && state === 'ready') await this.change(`enable agent ${target}`, signal);
    await this.saveState(signal);
  }

  /** `show servers state` (every backend: the global file is loaded for all) → stateFile, temp + rename. */
  private async saveState(signal: AbortSignal): Promise<void> {
    const file = this.spec.stateFile;
    if (!file) return;
    const answer = await this.ask('show servers state', signal);
    if (!/^\d+\n# be_id/.test(answer)) throw new TrafficError('SR_TRAFFIC_STATE_FILE', `haproxy socket ${this.spec.socket}, "show servers state": HAProxy answered ${quote(answer)} – the change is made, but ${file} was not written: a reload now would undo it`);
    try {
      writeFileAtomic(file, answer);
    } catch (error) {
      throw new TrafficError('SR_TRAFFIC_STATE_FILE', `cannot write the HAProxy state file ${file} (${(error as Error).message}) – the change is made at runtime, but a reload now would undo it`, { cause: error });
    }
  }

  async waitUp(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    return this.poll(slot, timeoutMs, signal, (row, ms) => {
      const status = row.status ?? '';
      const check = (row.check_status ?? '').replace(/^\* /, '');
      if (status === 'no check') return { done: true, ok: true, detail: `${slot} in rotation after ${ms}ms (no health check configured: HAProxy cannot say it answers)` };
      // leaving MAINT a server is UP at once, before its first check (check_status INI): wait for a check that passed
      if (status.startsWith('UP') && (check === '' || CHECK_PASSED.test(check))) return { done: true, ok: true, detail: `${slot} UP after ${ms}ms${check ? ` (check ${check})` : ''}` };
      // last_chk carries the check's own words ("Connection refused", "HTTP status check returned code <503>")
      const why = row.last_chk || row.check_desc;
      const desc = why ? ` (${why})` : '';
      return { done: false, ok: false, detail: `${slot} not UP after ${ms}ms: HAProxy says ${status}${check ? `, check ${check}${desc}` : ''}` };
    });
  }

  async waitDrained(slot: string, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    return this.poll(slot, timeoutMs, signal, (row, ms) => {
      const status = row.status ?? '';
      const scur = Number(row.scur || 0);
      const qcur = Number(row.qcur || 0);
      if (inRotation(status)) return { done: true, ok: false, detail: `${slot} is in rotation (${status}) after ${ms}ms, not drained – was the drain undone (an agent-check answering "ready", another admin)?` };
      if (scur === 0 && qcur === 0) return { done: true, ok: true, detail: `${slot} drained after ${ms}ms (${status}, no sessions, nothing queued)` };
      return { done: false, ok: false, detail: `${slot} still has ${scur} sessions and ${qcur} queued after ${ms}ms (${status})` };
    });
  }

  private async poll(slot: string, timeoutMs: number, signal: AbortSignal, judge: (row: Record<string, string>, ms: number) => { done: boolean; ok: boolean; detail: string }): Promise<WaitResult> {
    const started = performance.now();
    for (;;) {
      const row = await this.row(slot, signal);
      const elapsedMs = Math.round(performance.now() - started);
      const verdict = judge(row, elapsedMs);
      if (verdict.done || elapsedMs >= timeoutMs) return { ok: verdict.ok, detail: verdict.detail, elapsedMs };
      await pause(Math.min(this.pollMs, timeoutMs - elapsedMs), signal);
    }
  }

  async shutdownSessions(slot: string, signal: AbortSignal): Promise<void> {
    await this.change(`shutdown sessions server ${this.spec.backend}/${this.server(slot)}`, signal);
  }

  async snapshot(signal: AbortSignal): Promise<string> {
    return (await this.serversState(signal)).answer;
  }
}
