// The CLI's way to load a recipe: validate with the generated validator of restart-recipe.schema.json
// (which is generated from the zod schema) and load zod — ~60 ms of a cold start — only to explain a
// rejection. Both say yes to exactly the same recipes: test/recipe/fast-validate.test.ts.
import { loadWith, NeedsExplanation, readRecipeFile, type LoadedRecipe, type LoadOptions, type SchemaValidator } from './load-core.js';
import type { WrittenRecipe } from './schema.js';
import validateRecipe from './recipe-validator.generated.js';

const generatedSchema: SchemaValidator = (data) => (validateRecipe(data) ? { ok: true, data: data as WrittenRecipe } : 'explain');

/** Read and load a recipe file. Throws RecipeError carrying every problem found. */
export async function loadRecipeFileFast(file: string, options: LoadOptions = {}): Promise<LoadedRecipe> {
  const { text, warnings } = await readRecipeFile(file, options);
  let loaded: LoadedRecipe;
  try {
    loaded = loadWith(text, file, options, generatedSchema);
  } catch (error) {
    if (!(error instanceof NeedsExplanation)) throw error;
    const { loadRecipeText } = await import('./load.js');
    loaded = loadRecipeText(text, file, options);
  }
  return { ...loaded, warnings: [...warnings, ...loaded.warnings] };
}
