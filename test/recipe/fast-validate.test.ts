// The CLI validates recipes with a validator generated from restart-recipe.schema.json and loads zod
// only to explain a rejection. This keeps the generated file in sync and proves both say yes to
// exactly the same documents. UPDATE_GENERATED=1 rewrites the file (npm run schema:write does).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse } from 'yaml';
import { Recipe } from '../../src/recipe/schema.js';
import validateRecipe from '../../src/recipe/recipe-validator.generated.js';
import { loadRecipeFileFast } from '../../src/recipe/load-fast.js';
import { loadRecipeFile } from '../../src/recipe/load.js';
import { RecipeError } from '../../src/errors.js';
import { GENERATED_VALIDATOR, generateValidatorSource } from '../support/generate-validator.js';
import { ROOT } from '../support/sandbox.js';

const RECIPES = join(ROOT, 'recipes');
const corpus = readdirSync(RECIPES)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => parse(readFileSync(join(RECIPES, f), 'utf8')) as Record<string, unknown>);

const zodSays = (data: unknown) => Recipe.safeParse(data).success;

/** Replace the value at a random path of a JSON-like tree. */
function mutate(tree: unknown, choices: number[], replacement: unknown, mode: 'set' | 'delete' | 'rename'): unknown {
  const copy = structuredClone(tree);
  let node: unknown = copy;
  for (let depth = 0; depth < choices.length; depth++) {
    if (typeof node !== 'object' || node === null) break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = keys[(choices[depth] ?? 0) % keys.length] as string;
    const child = (node as Record<string, unknown>)[key];
    const last = depth === choices.length - 1 || typeof child !== 'object' || child === null;
    if (last) {
      const target = node as Record<string, unknown>;
      if (mode === 'delete' && !Array.isArray(target)) delete target[key];
      else if (mode === 'rename' && !Array.isArray(target)) {
        target[`${key}_x`] = target[key];
        delete target[key];
      } else target[key] = replacement;
      break;
    }
    node = child;
  }
  return copy;
}

describe('generated recipe validator', () => {
  it('is in sync with restart-recipe.schema.json', () => {
    const fresh = generateValidatorSource();
    if (process.env.UPDATE_GENERATED === '1') writeFileSync(GENERATED_VALIDATOR, fresh);
    expect(readFileSync(GENERATED_VALIDATOR, 'utf8')).toBe(fresh);
  });

  it('accepts every shipped recipe, as zod does', () => {
    for (const data of corpus) {
      expect(zodSays(data)).toBe(true);
      expect(validateRecipe(data)).toBe(true);
    }
  });

  it('says yes to exactly the documents zod says yes to (mutations of the shipped recipes)', () => {
    const value = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom('250ms', '1.5s', '2m', '0s', '-1s', '1h', '2xx', '7xx', 'SIGTERM', 'sigterm', 'open', 'drained', 'GET', 'POST', ''),
      fc.integer({ min: -2, max: 70_000 }),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom('url', 'run', 'regex', 'host', 'port', 'x'), fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxKeys: 3 }),
    );
    let rejected = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: corpus.length - 1 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        value,
        fc.constantFrom('set', 'delete', 'rename') as fc.Arbitrary<'set' | 'delete' | 'rename'>,
        (which, path, replacement, mode) => {
          const data = mutate(corpus[which], path, replacement, mode);
          const zod = zodSays(data);
          if (!zod) rejected++;
          expect(validateRecipe(data), JSON.stringify(data).slice(0, 400)).toBe(zod);
        },
      ),
      { numRuns: 3000, seed: Number(process.env.SR_FUZZ_SEED ?? 424242) },
    );
    // the property must have exercised both answers
    expect(rejected).toBeGreaterThan(300);
  });

  it('the fast loader gives the same result and the same located problems as the zod loader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-fast-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nname: x\nstop: { run: "true", timeout: 5 }\nstart:\n  runn: "true"\ngates:\n  - tcp: 127.0.0.1:80\n    stable_for: forever\n');
    try {
      const errors = await Promise.all([loadRecipeFileFast(bad), loadRecipeFile(bad)].map((p) => p.then(() => null, (e: unknown) => e)));
      expect(errors[0]).toBeInstanceOf(RecipeError);
      expect((errors[0] as RecipeError).problems).toEqual((errors[1] as RecipeError).problems);
      expect((errors[0] as RecipeError).message).toMatch(/start\.runn: unknown key "runn"; did you mean "run"\?/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const f of readdirSync(RECIPES).filter((x) => x.endsWith('.yaml'))) {
      const [fast, slow] = await Promise.all([loadRecipeFileFast(join(RECIPES, f), { env: {} }), loadRecipeFile(join(RECIPES, f), { env: {} })]);
      expect(fast.recipe).toEqual(slow.recipe);
    }
  });
});
