import { readlink, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { parseVarFlags, type Command, type Options } from '../cli.js';
import { UsageError } from '../errors.js';
import type { ResolvedRecipe } from '../recipe/types.js';
import { checkStateDirFlag } from './restart-common.js';

export const command: Command = {
  name: 'plan',
  summary: 'Print the resolved plan in the order a run would execute it, secrets redacted. Touches nothing.',
  usage: 'plan FILE [--release ID] [--var NAME=value]... [--json] [--state-dir DIR]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    release: { type: 'string', description: 'plan a switch to this release (releases_dir/ID)' } as Options[string],
    var: { type: 'string', multiple: true, description: 'NAME=value, wins over vars and the environment (repeatable)' } as Options[string],
    json: { type: 'boolean', description: 'print the plan as JSON' } as Options[string],
    'state-dir': { type: 'string', description: 'where journals and locks live (read, never written)' } as Options[string],
  },
  help: 'Exit codes: 0 plan printed · 64 usage · 65 invalid recipe',
  async run(values, [file], io) {
    const [{ RELEASE_ID_PATTERN }, { loadRecipeFileFast: loadRecipeFile }] = await Promise.all([import('../recipe/load-core.js'), import('../recipe/load-fast.js')]);
    const release = values.release as string | undefined;
    checkStateDirFlag(values, io);
    if (release !== undefined && !RELEASE_ID_PATTERN.test(release)) {
      throw new UsageError(`--release must match [A-Za-z0-9][A-Za-z0-9._-]* (got ${JSON.stringify(release)})`);
    }
    const vars = parseVarFlags(values.var as string[] | undefined);
    const { recipe, redactor, warnings } = await loadRecipeFile(file as string, { vars, env: io.env, cwd: io.cwd });
    if (release !== undefined && !recipe.release) {
      throw new UsageError(`--release needs a release: section in ${file} (symlink + releases_dir, or current + activate)`);
    }
    for (const w of warnings) io.stderr.write(`${w}\n`);
    const { buildPlan, renderPlan } = await import('../plan.js');
    const previous = await currentRelease(recipe, io.cwd);
    const plan = buildPlan(recipe, { release, previous, redactor, targetExists: await targetExists(recipe, release ?? previous ?? null, io.cwd) });
    if (recipe.service.kind !== 'commands') {
      // what the unit's own settings say about this recipe (read-only: systemctl show, supervisorctl status)
      const { inspectOutsideRun } = await import('../service/manager.js');
      const seen = await inspectOutsideRun(recipe, (t) => redactor.redact(t), AbortSignal.timeout(30_000)).catch(() => null);
      for (const w of seen?.warnings ?? []) io.stderr.write(`warning: ${w}\n`);
      if (seen && !seen.ok) io.stderr.write(`warning: a run would abort now: ${seen.reason}\n`);
    }
    io.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : `${renderPlan(plan)}\n`);
    return 0;
  },
};

// Looking at releases_dir changes nothing; with commands only a run (or preflight) can tell.
async function targetExists(recipe: ResolvedRecipe, target: string | null, cwd: string): Promise<boolean | null> {
  if (recipe.release?.kind !== 'symlink' || target === null) return null;
  try {
    return (await stat(resolve(cwd, recipe.release.releasesDir, target))).isDirectory();
  } catch {
    return false;
  }
}

// Reading where the symlink points changes nothing; a `current` command is only run by `run`.
async function currentRelease(recipe: ResolvedRecipe, cwd: string): Promise<string | null | undefined> {
  if (recipe.release?.kind !== 'symlink') return undefined;
  try {
    return basename(await readlink(resolve(cwd, recipe.release.symlink)));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : undefined;
  }
}
