import { readlink } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { parseVarFlags, type Command, type Options } from '../cli.js';
import { UsageError } from '../errors.js';
import type { ResolvedRecipe } from '../recipe/types.js';

export const command: Command = {
  name: 'plan',
  summary: 'Print the resolved plan in the order a run would execute it, secrets redacted. Touches nothing.',
  usage: 'plan FILE [--release ID] [--var NAME=value]... [--json]',
  minPositionals: 1,
  maxPositionals: 1,
  options: {
    release: { type: 'string', description: 'plan a switch to this release (releases_dir/ID)' } as Options[string],
    var: { type: 'string', multiple: true, description: 'NAME=value, wins over vars and the environment (repeatable)' } as Options[string],
    json: { type: 'boolean', description: 'print the plan as JSON' } as Options[string],
  },
  help: 'Exit codes: 0 plan printed · 64 usage · 65 invalid recipe',
  async run(values, [file], io) {
    const [{ RELEASE_ID_PATTERN }, { loadRecipeFileFast: loadRecipeFile }] = await Promise.all([import('../recipe/load-core.js'), import('../recipe/load-fast.js')]);
    const release = values.release as string | undefined;
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
    const plan = buildPlan(recipe, { release, previous: await currentRelease(recipe, io.cwd), redactor });
    io.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : `${renderPlan(plan)}\n`);
    return 0;
  },
};

// Reading where the symlink points changes nothing; a `current` command is only run by `run`.
async function currentRelease(recipe: ResolvedRecipe, cwd: string): Promise<string | null | undefined> {
  if (recipe.release?.kind !== 'symlink') return undefined;
  try {
    return basename(await readlink(resolve(cwd, recipe.release.symlink)));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : undefined;
  }
}
