import type { Command } from '../cli.js';
import { RecipeError, type RecipeProblem } from '../errors.js';

export const command: Command = {
  name: 'validate',
  summary: 'Check recipe files: YAML, schema, variables and cross-field rules. Touches nothing.',
  usage: 'validate FILE...',
  minPositionals: 1,
  options: {},
  help: 'Prints one line per valid file. Exit 0 when all are valid; 65 with every problem of every file otherwise.',
  async run(_values, files, io) {
    const { loadRecipeFileFast: loadRecipeFile } = await import('../recipe/load-fast.js');
    const problems: RecipeProblem[] = [];
    for (const file of files) {
      try {
        const { recipe, warnings } = await loadRecipeFile(file, { env: io.env, cwd: io.cwd });
        for (const w of warnings) io.stderr.write(`${w}\n`);
        const deps = recipe.dependencies.length;
        const gates = recipe.gates.length;
        io.stdout.write(
          `${file}: ok (${recipe.name}: ${deps} ${deps === 1 ? 'dependency' : 'dependencies'}, ${gates} ${gates === 1 ? 'gate' : 'gates'})\n`,
        );
      } catch (error) {
        if (!(error instanceof RecipeError)) throw error;
        problems.push(...error.problems);
      }
    }
    if (problems.length > 0) throw new RecipeError(problems);
    return 0;
  },
};
