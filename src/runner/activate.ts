// The activate phase action: make a release the active one — the `current` symlink renamed over atomically,
// or the recipe's activate command — with an intent record before and a done record after.
import { join } from 'node:path';
import type { ReleaseSpec } from '../recipe/types.js';
import type { Phase } from '../report/events.js';
import { describeStep, runStepAction, type ActionContext } from './actions.js';
import { readCurrentRelease, switchSymlink, type CommandRunner } from './release.js';

export async function activateRelease(
  ctx: ActionContext,
  spec: ReleaseSpec | undefined,
  phase: Phase,
  release: string | null,
  runCommand: CommandRunner,
  signal: AbortSignal,
): Promise<string | null> {
  if (!spec || release === null) {
    ctx.journal.write({ type: 'note', phase, detail: 'in-place restart: no release to switch' });
    return null;
  }
  const active = await readCurrentRelease(spec, runCommand).catch(() => null);
  if (active === release) {
    ctx.journal.write({ type: 'note', phase, detail: `release ${release} is already active` });
    return null;
  }
  if (spec.kind === 'symlink') {
    ctx.journal.write({ type: 'intent', phase, action: 'switch-symlink', detail: `${spec.symlink} -> ${join(spec.releasesDir, release)}` });
    const t = performance.now();
    try {
      const detail = await switchSymlink(spec, release, ctx.runId);
      ctx.journal.write({ type: 'done', phase, action: 'switch-symlink', ok: true, durationMs: Math.round(performance.now() - t), detail });
      ctx.emit({ kind: 'step_finished', phase, step: 'switch symlink', ok: true, exitCode: null, durationMs: Math.round(performance.now() - t), detail });
      return null;
    } catch (error) {
      const detail = (error as Error).message;
      ctx.journal.write({ type: 'done', phase, action: 'switch-symlink', ok: false, durationMs: Math.round(performance.now() - t), detail });
      return `switching ${spec.symlink} to ${release} failed: ${detail}`;
    }
  }
  const r = await runStepAction(ctx, phase, spec.activate, release, signal);
  return r.ok ? null : `step "${spec.activate.name}" ${describeStep(r)}`;
}
