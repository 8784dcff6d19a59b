// Step 2 of loading: ${NAME} and ${NAME:-default} in every string value, resolved once at load time.
// Precedence: --var > vars (inside vars only earlier entries) > environment. `$${` writes a literal `${`.
// Plain $NAME is left for the shell. Values are never re-scanned, so a value cannot inject a reference.
import { isSecretName, type Redactor } from '../redact.js';
import type { Path, PathSegment } from './parse.js';
import { RESERVED_PREFIX, RUNTIME_SECTIONS_TEXT, allowsRuntimeVars, escapeLiteral, isRuntimeVar, keptReference } from './runtime-vars.js';

export const VAR_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface Reference {
  name: string;
  /** Present for ${NAME:-default}; used when NAME is undefined or empty. */
  fallback?: string;
}

type Part = string | Reference;

export type TemplateResult = { ok: true; parts: Part[] } | { ok: false; error: string };

/** Split a string into literal text and references. */
export function parseTemplate(text: string): TemplateResult {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      literal += '${';
      i += 3;
      continue;
    }
    if (text.startsWith('${', i)) {
      const close = text.indexOf('}', i + 2);
      if (close === -1) return { ok: false, error: `unterminated "\${" at character ${i + 1} (write $\${ for a literal \${)` };
      const body = text.slice(i + 2, close);
      const match = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(body);
      if (!match) {
        return { ok: false, error: `invalid reference "\${${body}}": expected \${NAME} or \${NAME:-default} (write $\${ for a literal \${)` };
      }
      if (literal) parts.push(literal);
      literal = '';
      parts.push(match[2] === undefined ? { name: match[1] as string } : { name: match[1] as string, fallback: match[2] });
      i = close + 1;
      continue;
    }
    literal += text[i];
    i += 1;
  }
  if (literal) parts.push(literal);
  return { ok: true, parts };
}

export type Lookup = (name: string) => string | undefined;

export type InterpolationResult =
  | { ok: true; value: string; used: string[] }
  | { ok: false; missing: string[]; error?: string };

export interface InterpolateStringOptions {
  /** Keep run-time references (${SAFE_RESTART_RELEASE} …) for the runner to bind; literal "${" is then marked. */
  keepRuntime?: boolean;
}

export function interpolateString(text: string, lookup: Lookup, opts: InterpolateStringOptions = {}): InterpolationResult {
  const parsed = parseTemplate(text);
  if (!parsed.ok) return { ok: false, missing: [], error: parsed.error };
  let value = '';
  const missing: string[] = [];
  const used: string[] = [];
  const literal = opts.keepRuntime ? escapeLiteral : (t: string) => t;
  for (const part of parsed.parts) {
    if (typeof part === 'string') {
      value += literal(part);
      continue;
    }
    if (opts.keepRuntime && isRuntimeVar(part.name)) {
      value += keptReference(part.name, part.fallback);
      continue;
    }
    const found = lookup(part.name);
    if (found !== undefined && (found !== '' || part.fallback === undefined)) {
      used.push(part.name);
      value += literal(found);
    } else if (part.fallback !== undefined) {
      value += literal(part.fallback);
    } else if (!missing.includes(part.name)) {
      missing.push(part.name);
    }
  }
  return missing.length > 0 ? { ok: false, missing } : { ok: true, value, used };
}

export interface InterpolationProblem {
  path: Path;
  message: string;
}

export interface InterpolateOptions {
  /** --var NAME=value flags: they win everywhere. */
  cliVars: Record<string, string>;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
}

export interface InterpolatedData {
  data: unknown;
  /** vars after resolution, with --var overrides applied (what steps and the plan see). */
  vars: Record<string, string>;
  problems: InterpolationProblem[];
  /** e.g. a secret pasted into a command line, where `ps` shows it */
  warnings: InterpolationProblem[];
}

/** Resolve `vars` in order, then every string in the document. Collects every problem. */
export function interpolateRecipe(data: unknown, options: InterpolateOptions): InterpolatedData {
  const { cliVars, env, redactor } = options;
  const problems: InterpolationProblem[] = [];
  const warnings: InterpolationProblem[] = [];
  const vars: Record<string, string> = {};

  for (const [name, value] of Object.entries(cliVars)) redactor.addVariable(name, value);
  // every step inherits the whole environment: whatever it prints of a secret-named variable is redacted too
  for (const [name, value] of Object.entries(env)) if (value !== undefined) redactor.addVariable(name, value);

  const fromEnv = (name: string): string | undefined => {
    const value = env[name];
    if (value !== undefined) redactor.addVariable(name, value);
    return value;
  };

  const resolve = (text: string, path: Path, lookup: Lookup): string => {
    const keepRuntime = allowsRuntimeVars(path);
    const result = interpolateString(text, lookup, { keepRuntime });
    if (!keepRuntime) problems.push(...misplacedRuntimeProblems(text, path));
    if (result.ok) {
      if (isShellString(path)) problems.push(...shellSyntaxProblems(text, path, lookup));
      if (isCommandPart(path)) warnings.push(...secretInCommandProblems(text, path));
      return result.value;
    }
    if (result.error) problems.push({ path, message: result.error });
    for (const name of result.missing) {
      if (isRuntimeVar(name)) continue;
      problems.push({
        path,
        message: `undefined variable \${${name}}: pass --var ${name}=..., define it under vars or in the environment, or write \${${name}:-default}`,
      });
    }
    return text;
  };

  for (const name of Object.keys(cliVars)) {
    if (name.startsWith(RESERVED_PREFIX)) problems.push({ path: [], message: `--var ${name}: names starting with ${RESERVED_PREFIX} are reserved for safe-restart's run-time variables – choose another name` });
  }
  const root = isRecord(data) ? data : undefined;
  const writtenVars = root && isRecord(root.vars) ? root.vars : undefined;
  if (root && writtenVars) {
    const resolvedVars: Record<string, unknown> = {};
    for (const [name, written] of Object.entries(writtenVars)) {
      if (name.startsWith(RESERVED_PREFIX)) {
        problems.push({ path: ['vars', name], message: `names starting with ${RESERVED_PREFIX} are reserved for safe-restart's run-time variables – choose another name` });
      }
      if (Object.hasOwn(cliVars, name)) {
        resolvedVars[name] = cliVars[name];
        continue;
      }
      if (typeof written !== 'string') {
        resolvedVars[name] = written;
        continue;
      }
      // Only entries defined before this one; a var naming itself reads the environment.
      const earlier = { ...vars };
      const value = resolve(written, ['vars', name], (ref) =>
        Object.hasOwn(cliVars, ref) ? cliVars[ref] : Object.hasOwn(earlier, ref) ? earlier[ref] : fromEnv(ref),
      );
      vars[name] = value;
      redactor.addVariable(name, value);
      resolvedVars[name] = value;
    }
    root.vars = resolvedVars;
  }
  for (const [name, value] of Object.entries(cliVars)) vars[name] = value;

  const lookup: Lookup = (ref) => (Object.hasOwn(cliVars, ref) ? cliVars[ref] : Object.hasOwn(vars, ref) ? vars[ref] : fromEnv(ref));
  const visit = (value: unknown, path: PathSegment[]): unknown => {
    if (typeof value === 'string') return resolve(value, path, lookup);
    if (Array.isArray(value)) return value.map((item, i) => visit(item, [...path, i]));
    if (isRecord(value)) {
      for (const [key, child] of Object.entries(value)) {
        if (path.length === 0 && key === 'vars') continue;
        value[key] = visit(child, [...path, key]);
      }
    }
    return value;
  };
  const out = visit(data, []);
  return { data: out, vars, problems, warnings };
}

// Characters that make a value code, or change the command around it, once pasted into /bin/sh -c.
const SHELL_SYNTAX = /[;&|`$<>()\\'"\n\r#*?[\]{}~]/;

/** A string command (run, command) is shell code: a value pasted into it must not be. */
function isShellString(path: Path): boolean {
  const last = path[path.length - 1];
  return path.length >= 2 && path[0] !== 'vars' && (last === 'run' || last === 'command');
}

/** A string command, or one argument of a list command: what `ps` shows to everyone on the host. */
function isCommandPart(path: Path): boolean {
  const [last, parent] = [path[path.length - 1], path[path.length - 2]];
  return isShellString(path) || (typeof last === 'number' && path[0] !== 'vars' && (parent === 'run' || parent === 'command' || parent === 'spawn'));
}

function secretInCommandProblems(text: string, path: Path): InterpolationProblem[] {
  const parsed = parseTemplate(text);
  if (!parsed.ok) return [];
  return parsed.parts
    .filter((part): part is Reference => typeof part !== 'string' && isSecretName(part.name))
    .map((part) => ({
      path,
      message: `\${${part.name}} is a secret and would show in the process list (ps) of this command; pass it through the step's env: (or the environment) and read "$${part.name}" there`,
    }));
}

// A run-time reference outside the parts that run would stay unresolved text.
function misplacedRuntimeProblems(text: string, path: Path): InterpolationProblem[] {
  const parsed = parseTemplate(text);
  if (!parsed.ok) return [];
  return parsed.parts
    .filter((part): part is Reference => typeof part !== 'string' && isRuntimeVar(part.name))
    .map((part) => ({
      path,
      message: `\${${part.name}} is a run-time variable, known only while a run is under way: it may be used in ${RUNTIME_SECTIONS_TEXT}, not here`,
    }));
}

function shellSyntaxProblems(text: string, path: Path, lookup: Lookup): InterpolationProblem[] {
  const parsed = parseTemplate(text);
  if (!parsed.ok) return [];
  const problems: InterpolationProblem[] = [];
  for (const part of parsed.parts) {
    if (typeof part === 'string') continue;
    // bound at run time, where the same rule is applied to the value
    if (isRuntimeVar(part.name)) continue;
    const found = lookup(part.name);
    const value = found !== undefined && (found !== '' || part.fallback === undefined) ? found : (part.fallback ?? '');
    const bad = SHELL_SYNTAX.exec(value)?.[0];
    if (bad === undefined) continue;
    problems.push({
      path,
      message: `\${${part.name}} is pasted into a shell command and its value contains shell syntax (${JSON.stringify(bad)}); write the command as a list (argv, no shell), or pass the value through the step's env: and write "$${part.name}"`,
    });
  }
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
