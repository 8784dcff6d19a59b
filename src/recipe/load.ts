// Loading with zod as the schema step: every problem explained with its location. The library API
// (loadRecipeFile, loadRecipeText) and the fallback of the CLI's fast path (load-fast.ts).
import { loadWith, readRecipeFile, type LoadedRecipe, type LoadOptions, type SchemaValidator } from './load-core.js';
import { Recipe } from './schema.js';
import { describeIssues } from './schema-problems.js';

export { RELEASE_ID_PATTERN, type LoadedRecipe, type LoadOptions } from './load-core.js';

const zodSchema: SchemaValidator = (data) => {
  const result = Recipe.safeParse(data, { reportInput: true });
  return result.success ? { ok: true, data: result.data } : { ok: false, problems: describeIssues(result.error.issues, Recipe) };
};

/** Read and load a recipe file. Throws RecipeError carrying every problem found. */
export async function loadRecipeFile(file: string, options: LoadOptions = {}): Promise<LoadedRecipe> {
  const { text, warnings } = await readRecipeFile(file, options);
  const loaded = loadRecipeText(text, file, options);
  return { ...loaded, warnings: [...warnings, ...loaded.warnings] };
}

/** Load a recipe from text; `file` names it in messages. Throws RecipeError carrying every problem found. */
export function loadRecipeText(text: string, file: string, options: LoadOptions = {}): LoadedRecipe {
  return loadWith(text, file, options, zodSchema);
}
