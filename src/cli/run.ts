import type { Command } from '../cli.js';
import { UsageError } from '../errors.js';
import { RESTART_OPTIONS, askYesNo, checkReleaseFlag, loadForRestart, restartFromCli } from './restart-common.js';

export const command: Command = {
  name: 'run',
  summary: 'Check dependencies, stop, switch release, start, prove health with gates; roll back when they fail.',
  usage: 'run FILE [--release ID] [--var K=V]... [--dry-run] [--state-dir DIR] [--json | --quiet | --no-tty] [--reason TEXT] [--confirm] [--yes]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    release: { type: 'string', description: 'switch to this release (releases_dir/ID); default: restart in place' } as Command['options'][string],
    'dry-run': { type: 'boolean', description: 'print the plan and exit 0; touches nothing' } as Command['options'][string],
    confirm: { type: 'boolean', description: 'print the plan and ask "Proceed? [y/N]" first (also `confirm: true` in the recipe)' } as Command['options'][string],
    yes: { type: 'boolean', short: 'y', description: 'answer yes to the confirmation (needed without a terminal)' } as Command['options'][string],
    ...RESTART_OPTIONS,
  },
  help: 'Exit codes: 0 succeeded · 1 failed before any change · 2 rolled back, previous release healthy · 3 needs a human · 4 locked',
  async run(values, [file], io) {
    const release = checkReleaseFlag(values.release);
    const loaded = await loadForRestart(file as string, values, io);
    if (values['dry-run']) {
      const { buildPlan, renderPlan } = await import('../plan.js');
      const plan = buildPlan(loaded.recipe, { release, redactor: loaded.redactor });
      io.stdout.write(values.json ? `${loaded.redactor.redact(JSON.stringify(plan, null, 2))}\n` : `${loaded.redactor.redact(renderPlan(plan))}\n`);
      return 0;
    }
    if ((loaded.recipe.confirm || values.confirm) && !values.yes) {
      if (!io.stdin.isTTY) {
        throw new UsageError('this run asks for confirmation (confirm: true in the recipe, or --confirm) but stdin is not a terminal – pass --yes to proceed without asking');
      }
      const { buildPlan, renderPlan } = await import('../plan.js');
      io.stderr.write(`${loaded.redactor.redact(renderPlan(buildPlan(loaded.recipe, { release, redactor: loaded.redactor })))}\n\n`);
      if (!(await askYesNo(io, 'Proceed? [y/N] '))) {
        io.stderr.write('Not confirmed – nothing was touched.\n');
        return 1;
      }
    }
    return restartFromCli(values, io, loaded, { release, mode: 'run' });
  },
};
