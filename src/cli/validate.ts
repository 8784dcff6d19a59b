import type { Command } from '../cli.js';
import { RecipeError, type RecipeProblem } from '../errors.js';

export const command: Command = {
  name: 'validate',
  summary: 'Check recipe files: YAML, schema, variables and cross-field rules. Touches nothing.',
  usage: 'validate FILE... [--live]',
  minPositionals: 1,
  options: {
    live: { type: 'boolean', description: 'also ask the service manager (read-only) whether each recipe can work here as written: unit loaded, its timeouts, supervisord reachable' } as Command['options'][string],
  },
  help: 'Prints one line per valid file. Exit 0 when all are valid; 65 with every problem of every file otherwise; with --live, 1 when a valid recipe cannot work here now.',
  async run(values, files, io) {
    let live = 0;
    const { loadRecipeFileFast: loadRecipeFile } = await import('../recipe/load-fast.js');
    const problems: RecipeProblem[] = [];
    for (const file of files) {
      try {
        const { recipe, warnings, redactor } = await loadRecipeFile(file, { env: io.env, cwd: io.cwd });
        for (const w of warnings) io.stderr.write(`${w}\n`);
        const deps = recipe.dependencies.length;
        const gates = recipe.gates.length;
        io.stdout.write(
          `${file}: ok (${recipe.name}: ${deps} ${deps === 1 ? 'dependency' : 'dependencies'}, ${gates} ${gates === 1 ? 'gate' : 'gates'})\n`,
        );
        if (values.live) {
          const { inspectOutsideRun } = await import('../service/manager.js');
          const seen = await inspectOutsideRun(recipe, (t) => redactor.redact(t), AbortSignal.timeout(30_000));
          for (const w of seen.warnings) io.stderr.write(`${file}: warning: ${w}\n`);
          if (!seen.ok) {
            live = 1;
            io.stderr.write(`${file}: live: ${seen.reason}\n`);
          } else if (recipe.service.kind !== 'commands') io.stdout.write(`${file}: live: ${seen.label} can be managed\n`);
        }
      } catch (error) {
        if (!(error instanceof RecipeError)) throw error;
        problems.push(...error.problems);
      }
    }
    if (problems.length > 0) throw new RecipeError(problems);
    return live;
  },
};
