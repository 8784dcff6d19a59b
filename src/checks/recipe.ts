// The `recipe` check: another recipe, in the same state directory, is ready when no run of it is in progress, none
// is unfinished, and its last run succeeded — so two on-call engineers cannot restart the database and the service
// that needs it at the same time. One attempt reads its lock and journals; it changes nothing.
import type { RecipeProbe } from '../recipe/types.js';
import { listRuns } from '../history.js';
import { describeInFlight, findUnfinishedRun } from '../runner/journal.js';
import { inspectLock } from '../runner/lock.js';
import { StateStore } from '../runner/state.js';
import type { AttemptFn, AttemptResult } from './types.js';

function notReady(code: string, message: string): AttemptResult {
  return { ok: false, detail: message, error: { code, message } };
}

export const attempt: AttemptFn<RecipeProbe> = async (probe, ctx) => {
  if (!ctx.stateDir) return notReady('RECIPE_NO_STATE_DIR', `recipe ${probe.name}: no state directory to read it from`);
  const store = new StateStore(ctx.stateDir);
  const lock = inspectLock(store.lockPath(probe.name));
  if (lock.state === 'live') {
    return notReady('RECIPE_RUN_IN_PROGRESS', `a ${lock.info.command} of ${probe.name} is in progress: pid ${lock.info.pid} on ${lock.info.host}, started ${lock.info.startedAt} (run ${lock.info.runId})`);
  }
  const unfinished = findUnfinishedRun(store.runsDir(probe.name));
  if (unfinished) {
    return notReady('RECIPE_UNFINISHED', `run ${unfinished.runId} of ${probe.name} never finished (it stopped during ${describeInFlight(unfinished)}) – \`safe-restart recover\` it first`);
  }
  const last = listRuns(ctx.stateDir, { recipe: probe.name, limit: 1 })[0];
  if (!last) return notReady('RECIPE_NO_HISTORY', `${probe.name} has no run recorded in ${ctx.stateDir}: nothing says it is healthy`);
  if (last.outcome !== 'succeeded') {
    return notReady('RECIPE_NOT_HEALTHY', `the last run of ${probe.name} (${last.runId}) ended ${last.outcome}${last.exitCode === null ? '' : ` (exit ${last.exitCode})`}: ${last.reason}`);
  }
  return { ok: true, detail: `${probe.name}: last run ${last.runId} succeeded${last.targetRelease ? ` (release ${last.targetRelease})` : ''}, none in progress`, error: null };
};
