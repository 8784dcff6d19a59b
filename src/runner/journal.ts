// One JSONL journal per run: an intent record before each side effect, a done record after it,
// each written with fsync. After any crash (even SIGKILL) the journal shows what was in flight.
import { appendFileSync, closeSync, constants, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SafeRestartError, EXIT } from '../errors.js';
import type { Phase, Summary } from '../report/events.js';

interface Base {
  ts: string;
  runId: string;
  seq: number;
}

export type JournalRecord =
  | (Base & {
      type: 'run';
      recipe: string;
      file: string;
      host: string;
      pid: number;
      procStart: number | null;
      startedAt: string;
      command: 'run' | 'recover';
      previousRelease: string | null;
      targetRelease: string | null;
      reason?: string;
      /** for recover: the run it finishes */
      recovering?: string;
    })
  | (Base & { type: 'phase'; phase: Phase; status: 'started' | 'finished'; ok?: boolean; durationMs?: number; detail?: string })
  | (Base & { type: 'intent'; phase: Phase; action: string; detail: string })
  | (Base & { type: 'child'; phase: Phase; action: string; pid: number; pgid: number; startTime: number | null })
  | (Base & {
      type: 'done';
      phase: Phase;
      action: string;
      ok: boolean;
      durationMs: number;
      detail: string;
      exitCode?: number | null;
      pid?: number;
      pgid?: number;
      outputTail?: string;
    })
  | (Base & { type: 'note'; phase: Phase; detail: string })
  /** PREVIOUS and TARGET once they are known (before anything is touched) */
  | (Base & { type: 'releases'; previousRelease: string | null; targetRelease: string | null })
  | (Base & { type: 'recovered'; by: string })
  | (Base & { type: 'summary'; summary: Summary });

type Omitted<R> = R extends unknown ? Omit<R, 'ts' | 'runId' | 'seq'> : never;
export type NewRecord = Omitted<JournalRecord>;

export class JournalWriteError extends SafeRestartError {
  constructor(path: string, cause: unknown) {
    super('SR_JOURNAL_WRITE', `cannot write the journal ${path}: ${(cause as Error)?.message ?? cause} – refusing to go on with a side effect that could not be recorded`, EXIT.needsHuman, { cause });
  }
}

export interface JournalOptions {
  redact?: (text: string) => string;
  /** Test seam for disk-full behaviour: called before each write; throw to simulate ENOSPC. */
  beforeWrite?: (record: NewRecord) => void;
}

export class Journal {
  readonly path: string;
  readonly runId: string;
  private fd: number;
  private seq = 0;
  private readonly options: JournalOptions;
  /** true once the intent of a side effect (stop onwards) is on disk: before that, nothing was touched */
  touched = false;

  constructor(path: string, runId: string, options: JournalOptions = {}) {
    this.path = path;
    this.runId = runId;
    this.options = { beforeWrite: failAtFromEnv(process.env.SAFE_RESTART_TEST_JOURNAL_FAIL_AT), ...options };
    try {
      this.fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch (error) {
      throw new JournalWriteError(path, error);
    }
  }

  /** Append one record durably. Throws JournalWriteError: the caller must not perform the side effect. */
  write(record: NewRecord): void {
    const full = { ts: new Date().toISOString(), runId: this.runId, seq: this.seq++, ...record };
    let line = `${JSON.stringify(full)}\n`;
    if (this.options.redact) line = this.options.redact(line);
    try {
      this.options.beforeWrite?.(record);
      writeSync(this.fd, line);
      // phase and note records only narrate: the next fsync (every intent, done, child, header and
      // summary) makes them durable too, and each fsync costs milliseconds on a loaded disk
      if (record.type !== 'phase' && record.type !== 'note') fsyncSync(this.fd);
    } catch (error) {
      throw new JournalWriteError(this.path, error);
    }
    if (record.type === 'intent' && TOUCHING.has(record.phase)) this.touched = true;
  }

  /** Best effort: used on paths that are already failing, where a second failure must not hide the first. */
  tryWrite(record: NewRecord): boolean {
    try {
      this.write(record);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** Test seam for the CLI (SAFE_RESTART_TEST_JOURNAL_FAIL_AT=type[:phase[:action]]): from the first matching record on, every write fails with ENOSPC, like a full disk. */
function failAtFromEnv(spec: string | undefined): JournalOptions['beforeWrite'] {
  if (!spec) return undefined;
  const [type, phase, action] = spec.split(':');
  let full = false;
  return (record) => {
    const r = record as { type: string; phase?: string; action?: string };
    full ||= r.type === type && (phase === undefined || r.phase === phase) && (action === undefined || r.action === action);
    if (full) throw Object.assign(new Error('ENOSPC: no space left on device (test seam)'), { code: 'ENOSPC' });
  };
}

/** Read a journal, tolerating a torn last line (the process died mid-write). */
export function readJournal(path: string): JournalRecord[] {
  const text = readFileSync(path, 'utf8');
  const records: JournalRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line) as JournalRecord);
    } catch {
      // a torn write at the end of a crashed run
    }
  }
  return records;
}

export interface JournalDigest {
  runId: string;
  header: Extract<JournalRecord, { type: 'run' }> | null;
  finished: boolean;
  recoveredBy: string | null;
  summary: Summary | null;
  /** the last phase that started and did not finish, or the last intent without its done */
  inFlight: { phase: Phase; action: string | null } | null;
  /** true once a side effect (stop onwards) was attempted */
  touched: boolean;
  previousRelease: string | null;
  targetRelease: string | null;
  children: Array<{ pid: number; pgid: number; startTime: number | null; action: string }>;
}

// blue/green and rolling change servers and the load balancer in their own phases (a recover's converge is not here:
// killed, it leaves the run it was recovering unfinished, and the next recover starts from that run again)
const TOUCHING: ReadonlySet<Phase> = new Set<Phase>(['stop', 'activate', 'start', 'after_start', 'gates', 'rollback_stop', 'rollback_activate', 'rollback_steps', 'rollback_start', 'rollback_gates', 'cleanup_stop', 'recover_kill', 'prepare', 'switch', 'switch_back', 'rollout', 'rollback_rollout']);

export function digestJournal(records: JournalRecord[]): JournalDigest {
  const header = (records.find((r) => r.type === 'run') as JournalDigest['header']) ?? null;
  const summaryRec = records.find((r) => r.type === 'summary') as Extract<JournalRecord, { type: 'summary' }> | undefined;
  const recovered = records.find((r) => r.type === 'recovered') as Extract<JournalRecord, { type: 'recovered' }> | undefined;
  const openIntents = new Map<string, { phase: Phase; action: string }>();
  let openPhase: Phase | null = null;
  let lastFinished: Phase | null = null;
  let touched = false;
  const children: JournalDigest['children'] = [];
  for (const r of records) {
    if (r.type === 'phase') {
      openPhase = r.status === 'started' ? r.phase : openPhase === r.phase ? null : openPhase;
      if (r.status === 'finished') lastFinished = r.phase;
    } else if (r.type === 'intent') {
      openIntents.set(`${r.phase}/${r.action}`, { phase: r.phase, action: r.action });
      if (TOUCHING.has(r.phase)) touched = true;
    } else if (r.type === 'done') {
      openIntents.delete(`${r.phase}/${r.action}`);
    } else if (r.type === 'child') {
      children.push({ pid: r.pid, pgid: r.pgid, startTime: r.startTime, action: r.action });
    }
  }
  const releases = records.filter((r) => r.type === 'releases').pop() as Extract<JournalRecord, { type: 'releases' }> | undefined;
  const lastIntent = [...openIntents.values()].pop();
  // killed between two phases: the one that had just finished is the truth the journal can tell
  const inFlight = lastIntent
    ? { phase: lastIntent.phase, action: lastIntent.action }
    : openPhase
      ? { phase: openPhase, action: null }
      : lastFinished && !summaryRec
        ? { phase: lastFinished, action: 'finished, next phase not started' }
        : null;
  return {
    runId: header?.runId ?? records[0]?.runId ?? 'unknown',
    header,
    finished: summaryRec !== undefined,
    recoveredBy: recovered?.by ?? null,
    summary: summaryRec?.summary ?? null,
    inFlight,
    touched,
    previousRelease: releases?.previousRelease ?? header?.previousRelease ?? null,
    targetRelease: releases?.targetRelease ?? header?.targetRelease ?? null,
    children,
  };
}

/** A run that touched something and never finished, and no recover has accounted for it: the next run must refuse. */
export function needsRecovery(d: JournalDigest): boolean {
  return d.touched && !d.finished && d.recoveredBy === null;
}

/** "gates (healthz)": what the dead run was doing, for messages. */
export function describeInFlight(d: JournalDigest): string {
  return d.inFlight ? `${d.inFlight.phase}${d.inFlight.action ? ` (${d.inFlight.action})` : ''}` : 'unknown';
}

/** The newest run in runsDir when it needs recovery (an older unfinished run was already superseded). */
export function findUnfinishedRun(runsDir: string): JournalDigest | null {
  let files: string[];
  try {
    files = readdirSync(runsDir).filter((f) => f.endsWith('.jsonl')).sort().reverse();
  } catch {
    return null;
  }
  for (const digest of newestFirst(runsDir, files)) {
    if (digest.finished) return null;
    if (needsRecovery(digest)) return digest;
  }
  return null;
}

// Run ids sort by the second they started in, then by a random suffix: within one second the run
// headers' start times decide (a recover and the next run often start in the same second).
function* newestFirst(runsDir: string, files: string[]): Generator<JournalDigest> {
  for (let i = 0; i < files.length; ) {
    const second = (files[i] as string).split('-')[0];
    let j = i;
    while (j < files.length && (files[j] as string).split('-')[0] === second) j++;
    const group = files.slice(i, j).map((f) => digestJournal(readJournal(join(runsDir, f))));
    if (group.length > 1) group.sort((a, b) => (b.header?.startedAt ?? '').localeCompare(a.header?.startedAt ?? ''));
    yield* group;
    i = j;
  }
}

/** Close a dead run's journal by naming the run that accounted for it. Best effort: false when it cannot. */
export function markRecovered(path: string, deadRunId: string, by: string): boolean {
  try {
    appendFileSync(path, `${JSON.stringify({ ts: new Date().toISOString(), runId: deadRunId, seq: -1, type: 'recovered', by })}\n`);
    return true;
  } catch {
    return false;
  }
}
