// Past runs and per-recipe status, read from the journals in the state directory.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { digestJournal, findUnfinishedRun, readJournal, type JournalDigest } from './runner/journal.js';
import { inspectLock } from './runner/lock.js';
import { StateStore } from './runner/state.js';

export type HistoryOutcome = 'succeeded' | 'rolled_back' | 'failed' | 'aborted' | 'in_progress' | 'unfinished';

export interface RunRecord {
  runId: string;
  recipe: string;
  command: 'run' | 'recover';
  startedAt: string | null;
  previousRelease: string | null;
  targetRelease: string | null;
  outcome: HistoryOutcome;
  exitCode: number | null;
  durationMs: number | null;
  /** the outcome as "reason – action" */
  reason: string;
  /** --reason given by whoever started the run */
  userReason: string | null;
  /** the run that accounted for this one after it died (recover, or a takeover of its untouched lock) */
  recoveredBy: string | null;
  journal: string;
}

export interface RecipeStatus {
  recipe: string;
  lastGoodRelease: string | null;
  lastRun: RunRecord | null;
  inProgress: boolean;
  unfinished: boolean;
  /** what to do next, for people */
  advice: string | null;
}

function recipesIn(store: StateStore, only?: string): string[] {
  if (!existsSync(store.root)) return [];
  return readdirSync(store.root)
    .filter((name) => name !== 'evidence' && (only === undefined || name === only))
    .filter((name) => existsSync(store.runsDir(name)) && statSync(store.runsDir(name)).isDirectory())
    .sort();
}

function toRecord(recipe: string, journal: string, digest: JournalDigest, live: boolean): RunRecord {
  const s = digest.summary;
  const header = digest.header;
  const outcome: HistoryOutcome = s?.outcome ?? (live ? 'in_progress' : 'unfinished');
  return {
    runId: digest.runId,
    recipe,
    command: header?.command ?? 'run',
    startedAt: header?.startedAt ?? null,
    previousRelease: s?.previousRelease ?? digest.previousRelease,
    targetRelease: s?.targetRelease ?? digest.targetRelease,
    outcome,
    exitCode: s?.exitCode ?? null,
    durationMs: s?.durationMs ?? null,
    reason:
      s?.description ??
      (live
        ? `in progress${digest.inFlight ? ` (${digest.inFlight.phase})` : ''}`
        : `died during ${digest.inFlight?.phase ?? 'an unknown phase'}${digest.recoveredBy ? ` – recovered by run ${digest.recoveredBy}` : ''}`),
    userReason: header?.reason ?? null,
    recoveredBy: digest.recoveredBy,
    journal,
  };
}

/** Every run, newest first. */
export function listRuns(stateDir: string, options: { recipe?: string; limit?: number } = {}): RunRecord[] {
  const store = new StateStore(stateDir);
  const runs: RunRecord[] = [];
  for (const recipe of recipesIn(store, options.recipe)) {
    const lock = inspectLockSafe(store.lockPath(recipe));
    for (const file of readdirSync(store.runsDir(recipe)).filter((f) => f.endsWith('.jsonl'))) {
      const path = join(store.runsDir(recipe), file);
      const digest = digestJournal(readJournal(path));
      const live = lock.state === 'live' && lock.info.runId === digest.runId;
      runs.push(toRecord(recipe, path, digest, live));
    }
  }
  runs.sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? '') || b.runId.localeCompare(a.runId));
  return options.limit !== undefined ? runs.slice(0, options.limit) : runs;
}

function inspectLockSafe(path: string): ReturnType<typeof inspectLock> {
  try {
    return inspectLock(path);
  } catch {
    return { state: 'free' };
  }
}

export function recipeStatuses(stateDir: string, recipe?: string): RecipeStatus[] {
  const store = new StateStore(stateDir);
  return recipesIn(store, recipe).map((name) => {
    const runs = listRuns(stateDir, { recipe: name });
    const lock = inspectLockSafe(store.lockPath(name));
    const inProgress = lock.state === 'live';
    // the same test the next `run` applies before it refuses with exit 4
    const dead = inProgress ? null : findUnfinishedRun(store.runsDir(name));
    const unfinished = dead !== null;
    const lastRun = runs[0] ?? null;
    const advice = dead
      ? `run \`safe-restart recover\` on the ${name} recipe: run ${dead.runId} died during a restart`
      : lastRun?.outcome === 'failed'
        ? `the last run needs a human (exit 3): see ${lastRun.journal}`
        : null;
    return { recipe: name, lastGoodRelease: store.readRecipeState(name).lastGoodRelease, lastRun, inProgress, unfinished, advice };
  });
}
