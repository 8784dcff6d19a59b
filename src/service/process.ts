// The watch of a process safe-restart spawned itself: it is our child, so its exit status arrives as an event.
import { readFileSync } from 'node:fs';
import { readFileTail } from '../process/tail.js';
import type { ServiceWatch, WatchFailure } from './watch.js';

const EVIDENCE_LINES = 10;
// a process that just closed its sockets is reaped a moment later: how long a probe waits for its exit status
const EXIT_NEWS_MS = 250;

export interface SpawnedProcess {
  pid: number;
  /** argv as written, for the message */
  label: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log?: string;
  /** performance.now() when it was started */
  startedAt: number;
}

export function watchSpawned(p: SpawnedProcess): ServiceWatch {
  let stopped = false;
  let dead: WatchFailure | null = null;
  const failure = new Promise<WatchFailure>((resolve) => {
    void p.exited.then(({ code, signal }) => {
      const after = formatSeconds(performance.now() - p.startedAt);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      dead = { reason: `process ${p.pid} (${p.label}) ${how} after ${after}`, evidence: logLines(p.log) };
      if (!stopped) resolve(dead);
    });
  });
  return {
    failure,
    async probe() {
      // still running (not even a zombie): the gate failed on its own, no exit to wait for
      if (!dead && runningNow(p.pid)) return null;
      if (!dead) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([p.exited, new Promise<void>((r) => (timer = setTimeout(r, EXIT_NEWS_MS)))]);
        clearTimeout(timer);
      }
      return dead;
    },
    stop() {
      stopped = true;
    },
  };
}

/** The last lines of a log file, empty lines dropped. */
export function logLines(file: string | undefined, count = EVIDENCE_LINES): string[] {
  if (!file) return [];
  try {
    return readFileTail(file)
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l !== '')
      .slice(-count);
  } catch {
    return [];
  }
}

function formatSeconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** The process exists and is not a zombie waiting to be reaped. */
function runningNow(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
