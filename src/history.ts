// Past runs and per-recipe status, read from the journals in the state directory.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeInFlight, digestJournal, findUnfinishedRun, readJournal, type JournalDigest } from './runner/journal.js';
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
  /** the recipe file the run was started with (absolute), from the journal's run record */
  file: string | null;
  /** the evidence bundle of the run, when it wrote one */
  evidence: string | null;
}

export interface RecipeStatus {
  recipe: string;
  lastGoodRelease: string | null;
  lastRun: RunRecord | null;
  inProgress: boolean;
  unfinished: boolean;
  /** the run that left the service needing a human (exit 3) when no later run proved a release healthy */
  needsHuman: RunRecord | null;
  /** the recipe file to name in advice: the unfinished run's, else the last run's */
  file: string | null;
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
    file: header?.file ?? null,
    evidence: s?.evidence ?? null,
  };
}

/** When the run ended (its start plus its duration), or null while it has no summary. */
export function finishedAt(run: RunRecord): string | null {
  if (run.startedAt === null || run.durationMs === null) return null;
  return new Date(Date.parse(run.startedAt) + run.durationMs).toISOString();
}

/** A run as `history --json` and `status --json` print it. */
export function runJson(r: RunRecord): Record<string, unknown> {
  return {
    runId: r.runId,
    recipe: r.recipe,
    startedAt: r.startedAt,
    previousRelease: r.previousRelease,
    targetRelease: r.targetRelease,
    outcome: r.outcome,
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    reason: r.reason,
    userReason: r.userReason,
    command: r.command,
    evidence: r.evidence,
  };
}

// Newest first: a run that proved a release healthy ends the search; runs that touched nothing (aborted,
// died before stop) leave the state an earlier exit 3 left.
function runNeedingHuman(runs: RunRecord[]): RunRecord | null {
  for (const run of runs) {
    if (run.outcome === 'failed') return run;
    if (run.outcome === 'aborted' || run.outcome === 'unfinished') continue;
    return null;
  }
  return null;
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
    const needsHuman = inProgress || dead ? null : runNeedingHuman(runs);
    const lastGoodRelease = store.readRecipeState(name).lastGoodRelease;
    const file = dead?.header?.file ?? lastRun?.file ?? null;
    const fileArg = file ?? `<the ${name} recipe file>`;
    const advice = dead
      ? `run \`safe-restart recover ${fileArg}\`: run ${dead.runId} died during ${describeInFlight(dead)}`
      : needsHuman
        ? `run ${needsHuman.runId} ended with exit 3: read ${needsHuman.evidence ?? needsHuman.journal}; once it is fixed, ${
            lastGoodRelease ? `\`safe-restart recover --force ${fileArg}\` restarts the last good release (${lastGoodRelease})` : `\`safe-restart run ${fileArg} --release ID\``
          }`
        : null;
    return { recipe: name, lastGoodRelease, lastRun, inProgress, unfinished, needsHuman, file, advice };
  });
}

/**
 * What `recover` would find for a recipe: null when it has work to do (a run needs recovery, or one is in
 * progress and the lock will say so), else the last run (null: none) and the run that left the service
 * needing a human, if any.
 */
export function nothingToRecover(stateDir: string, recipe: string): { lastRun: RunRecord | null; needsHuman: RunRecord | null } | null {
  const status = recipeStatuses(stateDir, recipe)[0];
  if (!status) return { lastRun: null, needsHuman: null };
  if (status.inProgress || status.unfinished) return null;
  return { lastRun: status.lastRun, needsHuman: status.needsHuman };
}
