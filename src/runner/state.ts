// Where runs leave their traces: the state directory, per-recipe folders, the last good release.
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, renameSync, statSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface StateDirOptions {
  flag?: string;
  env: NodeJS.ProcessEnv;
}

/** --state-dir, else SAFE_RESTART_STATE_DIR, else /var/lib/safe-restart when writable, else XDG state home. */
export function resolveStateDir({ flag, env }: StateDirOptions): string {
  if (flag) return flag;
  if (env.SAFE_RESTART_STATE_DIR) return env.SAFE_RESTART_STATE_DIR;
  const system = '/var/lib/safe-restart';
  if (isWritableOrCreatable(system)) return system;
  const xdg = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(xdg, 'safe-restart');
}

function isWritableOrCreatable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    try {
      accessSync(join(dir, '..'), constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
}

/** Create the directory 0700 (and warn when an existing one is world-writable). Returns warnings. */
export function ensurePrivateDir(dir: string): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if ((st.mode & 0o002) !== 0) return [`state directory ${dir} is world-writable: anyone on this host can forge its journals and locks`];
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(dir, 0o700);
  return [];
}

export interface RecipeState {
  lastGoodRelease: string | null;
  lastGoodRunId: string | null;
  updatedAt: string | null;
}

export class StateStore {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  recipeDir(recipe: string): string {
    return join(this.root, recipe);
  }
  runsDir(recipe: string): string {
    return join(this.root, recipe, 'runs');
  }
  journalPath(recipe: string, runId: string): string {
    return join(this.runsDir(recipe), `${runId}.jsonl`);
  }
  stepLogDir(recipe: string, runId: string): string {
    return join(this.runsDir(recipe), runId);
  }
  lockPath(recipe: string): string {
    return join(this.recipeDir(recipe), 'lock');
  }
  evidenceDir(runId: string): string {
    return join(this.root, 'evidence', runId);
  }
  prepare(recipe: string): string[] {
    const warnings = ensurePrivateDir(this.root);
    ensurePrivateDir(this.runsDir(recipe));
    return warnings;
  }
  readRecipeState(recipe: string): RecipeState {
    try {
      const raw = JSON.parse(readFileSync(join(this.recipeDir(recipe), 'state.json'), 'utf8')) as Partial<RecipeState>;
      return { lastGoodRelease: raw.lastGoodRelease ?? null, lastGoodRunId: raw.lastGoodRunId ?? null, updatedAt: raw.updatedAt ?? null };
    } catch {
      return { lastGoodRelease: null, lastGoodRunId: null, updatedAt: null };
    }
  }
  /** A strategy's own state (which slot is live …): <state>/<recipe>/<name>.json, null when absent or unreadable. */
  readExtra<T>(recipe: string, name: string): T | null {
    try {
      return JSON.parse(readFileSync(join(this.recipeDir(recipe), `${name}.json`), 'utf8')) as T;
    } catch {
      return null;
    }
  }
  writeExtra(recipe: string, name: string, value: unknown): void {
    this.writeJson(join(this.recipeDir(recipe), `${name}.json`), value);
  }
  /** Durable write: temp file, fsync, rename. */
  writeRecipeState(recipe: string, state: RecipeState): void {
    this.writeJson(join(this.recipeDir(recipe), 'state.json'), state);
  }
  private writeJson(file: string, state: unknown): void {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
}
