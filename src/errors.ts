// Error classes with stable codes, and the one table from error family to exit code.
// Nothing branches on message text: callers switch on `code` or on the class.

export const EXIT = {
  ok: 0,
  /** failed before any change: nothing touched */
  failedUntouched: 1,
  /** gates failed, rolled back, previous release healthy */
  rolledBack: 2,
  /** rollback failed or impossible: state unknown, needs a human */
  needsHuman: 3,
  /** another run holds the lock (or an unfinished run awaits `recover`) */
  locked: 4,
  usage: 64,
  invalidRecipe: 65,
  internal: 70,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class SafeRestartError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  constructor(code: string, message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** One problem in a recipe, located in its file. */
export interface RecipeProblem {
  file: string;
  line: number;
  col: number;
  /** dotted path, e.g. "gates[0].stable_for"; "" for the document itself */
  path: string;
  message: string;
}

export function formatProblem(p: RecipeProblem): string {
  const where = `${p.file}:${p.line}:${p.col}`;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

/** The recipe could not be read, parsed, interpolated or validated. Carries every problem found. */
export class RecipeError extends SafeRestartError {
  readonly problems: RecipeProblem[];
  constructor(problems: RecipeProblem[], options?: { cause?: unknown }) {
    super('SR_INVALID_RECIPE', problems.map(formatProblem).join('\n'), EXIT.invalidRecipe, options);
    this.problems = problems;
  }
}

/** Bad command-line usage. */
export class UsageError extends SafeRestartError {
  constructor(message: string) {
    super('SR_USAGE', message, EXIT.usage);
  }
}

/** Another live run holds the lock, or an unfinished run must be recovered first. */
export class LockedError extends SafeRestartError {
  constructor(code: 'SR_LOCKED' | 'SR_UNFINISHED_RUN', message: string) {
    super(code, message, EXIT.locked);
  }
}

/** A failure before anything was touched (bad --release, dependency not ready, before_stop hook failed, ...). */
export class PreflightError extends SafeRestartError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, EXIT.failedUntouched, options);
  }
}

export function isSafeRestartError(error: unknown): error is SafeRestartError {
  return error instanceof SafeRestartError;
}
