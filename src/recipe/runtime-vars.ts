// Run-time variables: ${SAFE_RESTART_RELEASE} and friends are known only while a run is under way (which
// release this phase is about, the run id …). Loading keeps their references in the strings of the parts that
// run (checks, hooks, steps, stop, start, verify, release.activate); the runner binds them just before a step or
// a check runs. A literal "${" written as "$${" in those strings is kept as LITERAL_MARK so that binding can
// never mistake it, or a substituted load-time value, for a reference.
import type { Path } from './parse.js';

export const RUNTIME_VARS = [
  'SAFE_RESTART_NAME',
  'SAFE_RESTART_RUN_ID',
  'SAFE_RESTART_RELEASE',
  'SAFE_RESTART_PREVIOUS_RELEASE',
  'SAFE_RESTART_TARGET_RELEASE',
  'SAFE_RESTART_PHASE',
  'SAFE_RESTART_SLOT',
  'SAFE_RESTART_PORT',
] as const;

export type RuntimeVarName = (typeof RUNTIME_VARS)[number];
export type RuntimeVars = Record<RuntimeVarName, string>;

const NAMES: ReadonlySet<string> = new Set(RUNTIME_VARS);

/** The values for one phase: `release` is the release this phase is about (TARGET forward, PREVIOUS in a rollback). */
export function runtimeVars(v: { name: string; runId: string; phase: string; release: string | null; previous: string | null; target: string | null; slot?: { name: string; port: number } | null }): RuntimeVars {
  return {
    SAFE_RESTART_NAME: v.name,
    SAFE_RESTART_RUN_ID: v.runId,
    SAFE_RESTART_RELEASE: v.release ?? '',
    SAFE_RESTART_PREVIOUS_RELEASE: v.previous ?? '',
    SAFE_RESTART_TARGET_RELEASE: v.target ?? '',
    SAFE_RESTART_PHASE: v.phase,
    SAFE_RESTART_SLOT: v.slot?.name ?? '',
    SAFE_RESTART_PORT: v.slot ? String(v.slot.port) : '',
  };
}
/** User variables (vars, --var) may not take this prefix. */
export const RESERVED_PREFIX = 'SAFE_RESTART_';

/** "${" that is text, not a reference (NUL never survives parsing a recipe, so it cannot be typed). */
export const LITERAL_MARK = '$\u0000{';

export function isRuntimeVar(name: string): name is RuntimeVarName {
  return NAMES.has(name);
}

const RUNTIME_SECTIONS: ReadonlySet<string> = new Set(['dependencies', 'gates', 'verify', 'hooks', 'stop', 'start', 'service', 'rollback', 'strategy']);

/** Where run-time references may appear: every string of the parts that run. */
export function allowsRuntimeVars(path: Path): boolean {
  const [first, second] = path;
  if (typeof first !== 'string') return false;
  return RUNTIME_SECTIONS.has(first) || (first === 'release' && (second === 'activate' || second === 'exists'));
}

export const RUNTIME_SECTIONS_TEXT = 'dependencies, verify, gates, hooks, service, stop, start, rollback.steps, release.activate and release.exists';

/** A kept reference, as loading writes it back into the string. */
export function keptReference(name: string, fallback: string | undefined): string {
  return fallback === undefined ? `\${${name}}` : `\${${name}:-${escapeLiteral(fallback)}}`;
}

export function escapeLiteral(text: string): string {
  return text.replaceAll('${', LITERAL_MARK);
}

const REFERENCE = /\$\{(SAFE_RESTART_[A-Z_]+)(?::-([^}]*))?\}/g;

// What a value substituted into a string run by /bin/sh -c may contain: it must stay one word of data.
const SHELL_SAFE = /^[A-Za-z0-9._@%+=:,/-]*$/;

export class RuntimeBindError extends Error {
  readonly code = 'SR_RUNTIME_VALUE';
}

/** Replace every run-time reference with its value; `shell` refuses a value that would become shell code. */
export function bindTemplate(text: string, vars: RuntimeVars, opts: { shell?: boolean } = {}): string {
  if (!text.includes('${') && !text.includes('\u0000')) return text;
  const bound = text.replace(REFERENCE, (whole, name: string, fallback: string | undefined) => {
    if (!isRuntimeVar(name)) return whole;
    const value = vars[name] === '' && fallback !== undefined ? fallback : vars[name];
    if (opts.shell && !SHELL_SAFE.test(value)) {
      throw new RuntimeBindError(
        `\${${name}} is ${JSON.stringify(value)}, which contains shell syntax and would become code in a shell command: write the command as a list, or read "$${name}" from the environment`,
      );
    }
    return value;
  });
  return bound.replaceAll(LITERAL_MARK, '${');
}

/** The string as the user wrote it, references unresolved: what `plan` shows. */
export function showTemplate(text: string): string {
  return text.replaceAll(LITERAL_MARK, '${');
}

/** Deep copy of a spec with every string bound; `shellPaths` names keys whose string value is a shell command. */
export function bindDeep<T>(value: T, vars: RuntimeVars, shellKeys: ReadonlySet<string> = new Set()): T {
  const visit = (v: unknown, key: string | null): unknown => {
    if (typeof v === 'string') return bindTemplate(v, vars, { shell: key !== null && shellKeys.has(key) });
    if (Array.isArray(v)) return v.map((item) => visit(item, null));
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v)) out[k] = visit(child, k);
      return out;
    }
    return v;
  };
  return visit(value, null) as T;
}

/** Whether any string in the value still holds a run-time reference (plan: "resolved per phase"). */
export function mentionsRuntimeVars(value: unknown): boolean {
  if (typeof value === 'string') return /\$\{SAFE_RESTART_[A-Z_]+(?::-[^}]*)?\}/.test(value);
  if (Array.isArray(value)) return value.some(mentionsRuntimeVars);
  if (typeof value === 'object' && value !== null) return Object.values(value).some(mentionsRuntimeVars);
  return false;
}

/** A template with plausible run-time values in place of its references: what load-time rules check the shape of. */
export function sampleTemplate(text: string): string {
  return text.replace(REFERENCE, (_whole, name: string) => (name === 'SAFE_RESTART_PORT' ? '1' : 'x')).replaceAll(LITERAL_MARK, '${');
}
