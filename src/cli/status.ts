import type { Command } from '../cli.js';
import { readOnlyStateDir } from './restart-common.js';

/** "2026-11-26 05:50:36Z": history's format for a moment. */
function shortTime(iso: string | null): string {
  return (iso ?? '-').replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export const command: Command = {
  name: 'status',
  summary: 'Per recipe: the last good release, the last run and its outcome, and whether a run is in progress, unfinished or needs a human.',
  usage: 'status [NAME] [--json] [--state-dir DIR]',
  maxPositionals: 1,
  options: {
    json: { type: 'boolean', description: 'one JSON document { "recipes": [...] }' } as Command['options'][string],
    'state-dir': { type: 'string', description: 'where the journals live' } as Command['options'][string],
  },
  async run(values, [name], io) {
    const { finishedAt, recipeStatuses, runJson } = await import('../history.js');
    const statuses = recipeStatuses(await readOnlyStateDir(values, io), name);
    const live = await Promise.all(statuses.map((s) => liveService(s.file, io.env)));
    if (values.json) {
      const recipes = statuses.map((s, i) => ({
        recipe: s.recipe,
        lastGoodRelease: s.lastGoodRelease,
        lastRun: s.lastRun && runJson(s.lastRun),
        inProgress: s.inProgress,
        unfinished: s.unfinished,
        needsHuman: s.needsHuman && { runId: s.needsHuman.runId, since: finishedAt(s.needsHuman), evidence: s.needsHuman.evidence },
        file: s.file,
        service: live[i] ?? null,
      }));
      io.stdout.write(`${JSON.stringify({ recipes }, null, 2)}\n`);
      return 0;
    }
    if (statuses.length === 0) {
      io.stdout.write(`no runs recorded${name ? ` for ${name}` : ''}\n`);
      return 0;
    }
    const blocks = statuses.map((s, i) => {
      const state = s.inProgress
        ? 'a run is in progress'
        : s.unfinished
          ? `UNFINISHED run – run \`safe-restart recover ${s.file ?? `<the ${s.recipe} recipe file>`}\``
          : s.needsHuman
            ? `FAILED – needs a human since ${shortTime(finishedAt(s.needsHuman))}`
            : 'idle';
      const last = s.lastRun
        ? `${s.lastRun.outcome}${s.lastRun.exitCode === null ? '' : ` (exit ${s.lastRun.exitCode})`} at ${s.lastRun.startedAt}: ${s.lastRun.reason}`
        : 'none';
      return [
        `${s.recipe}: ${state}`,
        `  last good release: ${s.lastGoodRelease ?? 'none recorded'}`,
        ...(live[i] ? [`  service: ${live[i]}`] : []),
        `  last run: ${last}`,
        ...(s.needsHuman?.evidence ? [`  evidence: ${s.needsHuman.evidence}`] : []),
        ...(s.advice ? [`  next: ${s.advice}`] : []),
      ].join('\n');
    });
    io.stdout.write(`${blocks.join('\n\n')}\n`);
    return 0;
  },
};

// The live unit or program next to the last good release; the recipe is read from the file its journal names.
// Best effort: a recipe that no longer loads (moved, needs --var) shows no live line.
async function liveService(file: string | null, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (!file) return null;
  try {
    const { loadRecipeFileFast } = await import('../recipe/load-fast.js');
    const { recipe } = await loadRecipeFileFast(file, { env });
    if (recipe.service.kind === 'commands') return null;
    const { managerFor } = await import('../service/manager.js');
    return await (await managerFor(recipe.service)).live(AbortSignal.timeout(5_000));
  } catch {
    return null;
  }
}
