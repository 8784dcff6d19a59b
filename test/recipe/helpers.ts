import { RecipeError } from '../../src/errors.js';
import { loadRecipeText, type LoadOptions, type LoadedRecipe } from '../../src/recipe/load.js';

export const BASE = 'version: 1\nname: svc\nstop:\n  run: systemctl stop svc\nstart:\n  run: systemctl start svc\n';

/** Load text that must be valid. */
export function load(text: string, options: LoadOptions = {}): LoadedRecipe {
  return loadRecipeText(text, 'r.yaml', { env: {}, ...options });
}

/** Load text that must be invalid; returns the formatted problem lines. */
export function problems(text: string, options: LoadOptions = {}): string[] {
  try {
    load(text, options);
  } catch (error) {
    if (error instanceof RecipeError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the recipe to be invalid');
}
