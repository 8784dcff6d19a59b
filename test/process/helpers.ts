// Shared test plumbing: per-test temp dirs, unique markers to find our processes, and cleanup by process
// group that runs even when a test fails.
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { groupMembers, ownProcessGroup, readProcStat, waitForGroupGone } from '../../src/process/group.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'process');

/** A `sleep` duration no other process on the machine uses: its argv is how we find it again. */
export function marker(): string {
  return `${900 + Math.floor(Math.random() * 90)}.${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;
}

/** Live (non-zombie) pids whose argv contains `needle` as a whole argument. */
export function pidsWithArg(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const stat = readProcStat(pid);
    if (stat && stat.state !== 'Z' && argv.includes(needle)) found.push(pid);
  }
  return found;
}

export async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Tracks what a test started so afterEach can kill it whatever happened. */
export class Cleanup {
  private groups = new Set<number>();
  private markers = new Set<string>();
  private dirs: string[] = [];

  group(pgid: number | undefined): void {
    if (pgid !== undefined) this.groups.add(pgid);
  }

  marker(): string {
    const m = marker();
    this.markers.add(m);
    return m;
  }

  tempDir(): string {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'sr-process-')));
    this.dirs.push(dir);
    return dir;
  }

  async run(): Promise<void> {
    const own = ownProcessGroup();
    const groups = new Set(this.groups);
    // Anything found by marker is ours too: kill its group (never our own) or, failing that, the pid.
    for (const m of this.markers) {
      for (const pid of pidsWithArg(m)) {
        const pgid = readProcStat(pid)?.pgid;
        if (pgid !== undefined && pgid !== own && pgid > 1) groups.add(pgid);
        else killQuietly(pid);
      }
    }
    for (const pgid of groups) {
      if (pgid <= 1 || pgid === own || groupMembers(pgid).length === 0) continue;
      killQuietly(-pgid);
      await waitForGroupGone(pgid, 5_000);
    }
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    this.groups.clear();
    this.markers.clear();
    this.dirs = [];
  }
}

function killQuietly(target: number): void {
  try {
    process.kill(target, 'SIGKILL');
  } catch {
    // already gone
  }
}
