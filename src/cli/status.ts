import type { Command } from '../cli.js';
import { stateDirFor } from './restart-common.js';

export const command: Command = {
  name: 'status',
  summary: 'Per recipe: the last good release, the last run and its outcome, and whether a run is in progress or unfinished.',
  usage: 'status [NAME] [--json] [--state-dir DIR]',
  maxPositionals: 1,
  options: {
    json: { type: 'boolean', description: 'one JSON document { "recipes": [...] }' } as Command['options'][string],
    'state-dir': { type: 'string', description: 'where the journals live' } as Command['options'][string],
  },
  async run(values, [name], io) {
    const { recipeStatuses } = await import('../history.js');
    const statuses = recipeStatuses(await stateDirFor(values, io), name);
    if (values.json) {
      const recipes = statuses.map((s) => ({
        recipe: s.recipe,
        lastGoodRelease: s.lastGoodRelease,
        lastRun: s.lastRun && {
          runId: s.lastRun.runId,
          recipe: s.lastRun.recipe,
          startedAt: s.lastRun.startedAt,
          previousRelease: s.lastRun.previousRelease,
          targetRelease: s.lastRun.targetRelease,
          outcome: s.lastRun.outcome,
          exitCode: s.lastRun.exitCode,
          durationMs: s.lastRun.durationMs,
          reason: s.lastRun.reason,
        },
        inProgress: s.inProgress,
        unfinished: s.unfinished,
      }));
      io.stdout.write(`${JSON.stringify({ recipes }, null, 2)}\n`);
      return 0;
    }
    if (statuses.length === 0) {
      io.stdout.write(`no runs recorded${name ? ` for ${name}` : ''}\n`);
      return 0;
    }
    const blocks = statuses.map((s) => {
      const state = s.inProgress ? 'a run is in progress' : s.unfinished ? 'UNFINISHED run – run `safe-restart recover`' : 'idle';
      const last = s.lastRun
        ? `${s.lastRun.outcome}${s.lastRun.exitCode === null ? '' : ` (exit ${s.lastRun.exitCode})`} at ${s.lastRun.startedAt}: ${s.lastRun.reason}`
        : 'none';
      return [`${s.recipe}: ${state}`, `  last good release: ${s.lastGoodRelease ?? 'none recorded'}`, `  last run: ${last}`, ...(s.advice ? [`  next: ${s.advice}`] : [])].join('\n');
    });
    io.stdout.write(`${blocks.join('\n\n')}\n`);
    return 0;
  },
};
