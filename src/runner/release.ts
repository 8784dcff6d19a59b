// What "the previous release" means: a `current` symlink into releases_dir, or two commands.
import { lstat, readlink, rename, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { ReleaseSpec, StepSpec } from '../recipe/types.js';

export const RELEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Runs a release command and returns its trimmed stdout (injected by run.ts so this module stays small). */
export type CommandRunner = (step: StepSpec, extraEnv: Record<string, string>) => Promise<{ ok: boolean; stdout: string; detail: string }>;

/** The active release id, or null on a first run (no link yet / the command prints nothing). */
export async function readCurrentRelease(spec: ReleaseSpec, runCommand: CommandRunner): Promise<string | null> {
  if (spec.kind === 'symlink') {
    let st;
    try {
      st = await lstat(spec.symlink);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    if (!st.isSymbolicLink()) throw new Error(`${spec.symlink} exists but is not a symbolic link: refusing to replace it`);
    const target = resolve(dirname(spec.symlink), await readlink(spec.symlink));
    return basename(target);
  }
  const result = await runCommand(spec.current, {});
  if (!result.ok) throw new Error(`release.current command failed: ${result.detail}`);
  const id = result.stdout.trim();
  if (id === '') return null;
  if (!RELEASE_ID.test(id)) throw new Error(`release.current printed "${id.slice(0, 80)}", which is not a release id ([A-Za-z0-9][A-Za-z0-9._-]*)`);
  return id;
}

/** PREVIOUS (what is active now) and TARGET (--release, else PREVIOUS), which must exist: decided before anything is touched. */
export async function resolveReleases(
  spec: ReleaseSpec | undefined,
  requested: string | undefined,
  runCommand: CommandRunner,
): Promise<{ ok: true; previous: string | null; target: string | null } | { ok: false; reason: string; previous: string | null; target: string | null }> {
  if (requested !== undefined) {
    if (!RELEASE_ID.test(requested)) return { ok: false, reason: `--release "${requested}" must match [A-Za-z0-9][A-Za-z0-9._-]*`, previous: null, target: null };
    if (!spec) return { ok: false, reason: `--release ${requested} was given but the recipe has no release section`, previous: null, target: null };
  }
  if (!spec) return { ok: true, previous: null, target: null };
  let previous: string | null;
  try {
    previous = await readCurrentRelease(spec, runCommand);
  } catch (error) {
    return { ok: false, reason: `cannot read the current release: ${(error as Error).message}`, previous: null, target: null };
  }
  const target = requested ?? previous;
  if (target === null) {
    return { ok: false, reason: `no current release (${spec.kind === 'symlink' ? `${spec.symlink} does not exist` : 'release.current printed nothing'}) and no --release given`, previous, target };
  }
  const exists = await releaseExists(spec, target, runCommand);
  if (!exists.ok) return { ok: false, reason: `release ${target} not found: ${exists.detail}`, previous, target };
  return { ok: true, previous, target };
}

/** For releases_dir: the directory must exist; with commands, `release.exists` decides (without it, the activate command will). */
export async function releaseExists(spec: ReleaseSpec, id: string, runCommand?: CommandRunner): Promise<{ ok: boolean; detail: string }> {
  if (spec.kind !== 'symlink') {
    if (!spec.exists || !runCommand) return { ok: true, detail: 'release existence is up to the activate command' };
    const r = await runCommand(spec.exists, { SAFE_RESTART_RELEASE: id });
    return r.ok ? { ok: true, detail: `release.exists accepted ${id}` } : { ok: false, detail: `release.exists ${r.detail}` };
  }
  const dir = join(spec.releasesDir, id);
  try {
    const st = await stat(dir);
    return st.isDirectory() ? { ok: true, detail: dir } : { ok: false, detail: `${dir} is not a directory` };
  } catch {
    return { ok: false, detail: `${dir} does not exist` };
  }
}

/** Point the symlink at releases_dir/ID atomically: a temp link renamed over the old one. */
export async function switchSymlink(spec: Extract<ReleaseSpec, { kind: 'symlink' }>, id: string, runId: string): Promise<string> {
  const target = resolve(spec.releasesDir, id);
  const tmp = `${spec.symlink}.safe-restart-${runId}`;
  await unlink(tmp).catch(() => undefined);
  await symlink(target, tmp);
  try {
    await rename(tmp, spec.symlink);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  return `${spec.symlink} -> ${target}`;
}
