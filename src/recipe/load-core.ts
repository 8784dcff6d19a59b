// Loading a recipe: parse (YAML with positions, hostile input refused) → interpolate → schema → rules →
// normalise. Every problem of every step is collected and thrown at once as a RecipeError.
// The schema step is injected: load.ts uses zod (every problem explained), load-fast.ts a validator
// generated from the same schema that only says yes or no, and falls back to zod to explain a no.
import { readFile, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { RecipeError, type RecipeProblem } from '../errors.js';
import { Redactor, SECRET_NAME_PATTERN } from '../redact.js';
import { interpolateRecipe } from './interpolate.js';
import { normalizeRecipe } from './normalize.js';
import { formatPath, MAX_BYTES, parseRecipeText, type Path } from './parse.js';
import { checkRules } from './rules.js';
import type { WrittenRecipe } from './schema.js';
import type { ResolvedRecipe } from './types.js';

export interface LoadOptions {
  /** --var NAME=value flags; they win over `vars` and the environment. */
  vars?: Record<string, string>;
  /** Environment for ${NAME} references. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory a relative file name is read from (default: the process's cwd). Messages show the name as given. */
  cwd?: string;
}

export interface LoadedRecipe {
  recipe: ResolvedRecipe;
  /** Knows every secret of this recipe; run all output through it. */
  redactor: Redactor;
  /** "FILE:LINE:COL: warning: path: message" lines, e.g. insecure: true or a world-writable file. */
  warnings: string[];
}

/** What `--release` accepts. */
export const RELEASE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const INLINE = '<inline>';

/** Read a recipe file as UTF-8 text (size, type and permission checked). Throws RecipeError. */
export async function readRecipeFile(file: string, options: LoadOptions = {}): Promise<{ text: string; warnings: string[] }> {
  const absolute = resolvePath(options.cwd ?? process.cwd(), file);
  const fail = (message: string): never => {
    throw new RecipeError([{ file, line: 1, col: 1, path: '', message }]);
  };
  const warnings: string[] = [];
  let bytes: Buffer;
  try {
    const info = await stat(absolute);
    if (!info.isFile()) fail('cannot read the recipe: not a regular file');
    if (info.size > MAX_BYTES) fail(`the file is ${info.size} bytes; a recipe may be at most ${MAX_BYTES} bytes (1 MiB)`);
    if ((info.mode & 0o002) !== 0) {
      warnings.push(
        `${file}:1:1: warning: the recipe file is world-writable (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); anyone on this host can change what safe-restart runs`,
      );
    }
    bytes = await readFile(absolute);
  } catch (error) {
    if (error instanceof RecipeError) throw error;
    const e = error as NodeJS.ErrnoException;
    return fail(`cannot read the recipe: ${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('the file is not valid UTF-8 text');
  }
  return { text, warnings };
}

/** What the schema step says: the typed recipe, every problem located by path, or "explain" when it can only say no. */
export type SchemaVerdict =
  | { ok: true; data: WrittenRecipe }
  | { ok: false; problems: Array<{ path: Path; message: string; at?: 'key' | 'value' }> }
  | 'explain';
export type SchemaValidator = (data: unknown) => SchemaVerdict;

/** Thrown when the schema step rejected the recipe without saying why: load again with zod (load.ts). */
export class NeedsExplanation extends Error {}

/** Load a recipe from text with the given schema step; `file` names it in messages. Throws RecipeError carrying every problem found. */
export function loadWith(text: string, file: string, options: LoadOptions, validate: SchemaValidator): LoadedRecipe {
  const redactor = new Redactor();
  const problems: RecipeProblem[] = [];
  const fail = (): never => {
    const sorted = [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
    throw new RecipeError(sorted.map((p) => ({ ...p, path: redactor.redact(p.path), message: redactor.redact(p.message) })));
  };

  const parsed = parseRecipeText(text, file);
  if (parsed.problems.length > 0) {
    problems.push(...parsed.problems);
    return fail();
  }
  const { locator } = parsed;
  const at = (path: Path, message: string, prefer: 'key' | 'value' = 'value'): RecipeProblem => {
    const { line, col } = locator.locate(path, prefer);
    return { file, line, col, path: formatPath(path), message };
  };

  const interpolated = interpolateRecipe(parsed.data, {
    cliVars: options.vars ?? {},
    env: options.env ?? process.env,
    redactor,
  });
  rememberSecrets(interpolated.data, redactor);
  problems.push(...interpolated.problems.map((p) => at(p.path, p.message)));

  const result = validate(interpolated.data);
  if (result === 'explain') throw new NeedsExplanation();
  if (!result.ok) {
    problems.push(...result.problems.map((p) => at(p.path, p.message, p.at)));
    return fail();
  }
  if (problems.length > 0) return fail();

  const rules = checkRules(result.data);
  problems.push(...rules.problems.map((p) => at(p.path, p.message, p.at)));
  if (problems.length > 0) return fail();

  const warnings = [
    ...interpolated.warnings.map((w) => formatWarning(at(w.path, w.message), redactor)),
    ...rules.warnings.map((w) => formatWarning(at(w.path, w.message, w.at), redactor)),
  ];
  const recipe = normalizeRecipe(result.data, {
    file: file === INLINE ? INLINE : resolvePath(options.cwd ?? process.cwd(), file),
    vars: interpolated.vars,
    redactor,
  });
  return { recipe, redactor, warnings };
}

function formatWarning(p: RecipeProblem, redactor: Redactor): string {
  return redactor.redact(`${p.file}:${p.line}:${p.col}: warning: ${p.path ? `${p.path}: ` : ''}${p.message}`);
}

const AUTH_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie)$/i;
const URL_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:([^\s/?#@]+)@/gi;

// Secrets written straight into the recipe: URL passwords, and values under secret-looking names
// (env: { DB_PASSWORD: ... }, headers: { Authorization: ... }).
function rememberSecrets(value: unknown, redactor: Redactor, key = ''): void {
  if (typeof value === 'string') {
    for (const match of value.matchAll(URL_PASSWORD)) redactor.addUrl(match[0].replace(/@$/, '@x'));
    if (SECRET_NAME_PATTERN.test(key) || AUTH_HEADER.test(key)) {
      redactor.addSecret(value);
      const credential = /^\S+\s+(\S.*)$/.exec(value)?.[1];
      if (AUTH_HEADER.test(key) && credential) redactor.addSecret(credential);
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) rememberSecrets(item, redactor);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) rememberSecrets(v, redactor, k);
  }
}
