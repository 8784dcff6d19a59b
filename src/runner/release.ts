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

/** For releases_dir: the directory must exist. A command-defined release cannot be checked ahead of time. */
export async function releaseExists(spec: ReleaseSpec, id: string): Promise<{ ok: boolean; detail: string }> {
  if (spec.kind !== 'symlink') return { ok: true, detail: 'release existence is up to the activate command' };
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
