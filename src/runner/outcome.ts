// Status and description kept apart: the outcome is a code, the description reads "reason – action".
import type { ResolvedRecipe } from '../recipe/types.js';
import type { Outcome } from '../report/events.js';
import type { MachineState } from './machine.js';
import type { StateStore } from './state.js';
import { lstatSync, readlinkSync } from 'node:fs';

export interface OutcomeInput {
  mode: 'run' | 'recover';
  exit: { code: number; outcome: Outcome };
  state: MachineState;
  previous: string | null;
  target: string | null;
  failures: string[];
  recipe: ResolvedRecipe;
  unfinishedRunId: string | null;
  /** a gate failure classified as a dependency outage, and what became of it */
  outage?: string | null;
}

const rel = (id: string | null) => (id === null ? 'none' : `release ${id}`);

export function describeOutcome(input: OutcomeInput): { reason: string; action: string; description: string } {
  const { exit, state, previous, target, failures, mode } = input;
  const first = state.failures[0];
  const firstReason = failures[0] ?? first?.reason ?? 'unknown failure';
  const rollbackFailure = state.failures.length > 1 ? (failures[failures.length - 1] ?? state.failures[state.failures.length - 1]?.reason) : undefined;
  let reason: string;
  let action: string;
  if (mode === 'recover') {
    const what = input.unfinishedRunId ? `run ${input.unfinishedRunId} was interrupted` : 'recover requested';
    if (exit.code === 2) {
      reason = what;
      action = `re-activated ${rel(target)}; it passed its gates`;
    } else if (exit.code === 1) {
      reason = `${what}; ${firstReason}`;
      action = 'nothing was touched – fix the cause and run recover again';
    } else {
      reason = `${what}; recovery failed in ${first?.phase ?? 'unknown'}: ${firstReason}`;
      action = 'service state unknown – a human must look (see below)';
    }
  } else if (exit.code === 0) {
    const gates = input.recipe.gates.length;
    reason = input.outage ?? `${rel(target)} passed ${gates} gate${gates === 1 ? '' : 's'}`;
    action = target !== null && previous !== target ? `now serving ${rel(target)} (was ${rel(previous)})` : 'restarted in place';
    if (state.warnings.length > 0) action += `; warning: ${state.warnings.map((w) => `${w.phase} ${w.reason}`).join('; ')}`;
  } else if (exit.code === 1) {
    reason = `${first?.phase ?? 'preflight'} failed: ${firstReason}`;
    action = 'nothing was touched';
  } else if (exit.code === 2) {
    reason = `${first?.phase ?? 'run'} failed: ${firstReason}`;
    action = `rolled back to ${rel(previous)}, which passed its gates`;
  } else {
    reason = `${first?.phase ?? 'run'} failed: ${firstReason}`;
    if (state.failures.length > 1) action = `rollback to ${rel(previous)} failed in ${state.failures[state.failures.length - 1]?.phase}: ${rollbackFailure} – needs a human`;
    else if (input.outage) action = `release ${target} left running; once the dependencies are back, its gates decide (\`safe-restart check --gates\`) – needs a human`;
    else if (!input.recipe.rollback.enabled) action = 'rollback is disabled in the recipe – needs a human';
    else if (previous === null) action = 'first run: no previous release to roll back to; stopped what was started – needs a human';
    else if (previous === target) action = 'in-place restart: no other release to roll back to – needs a human';
    else action = 'needs a human';
  }
  return { reason, action, description: `${reason} – ${action}` };
}

/** For exit 3: what is running and what to check first. */
export function leftStateLines(
  recipe: ResolvedRecipe,
  store: StateStore,
  journal: string,
  target: string | null,
  previous: string | null,
  readPid: (file: string) => number | null,
  alive: (pid: number) => boolean,
): string[] {
  const lines: string[] = [];
  if (recipe.release?.kind === 'symlink') {
    try {
      if (lstatSync(recipe.release.symlink).isSymbolicLink()) lines.push(`${recipe.release.symlink} points to ${readlinkSync(recipe.release.symlink)}`);
    } catch {
      lines.push(`${recipe.release.symlink} does not exist`);
    }
  }
  const svc = recipe.service;
  const pidfile = svc.kind !== 'commands' ? null : svc.start.kind === 'spawn' ? svc.start.pidfile : svc.stop.kind === 'signal' ? svc.stop.pidfile : null;
  if (svc.kind === 'systemd') lines.push(`systemd unit ${svc.unit}: \`systemctl status ${svc.unit}\`, \`journalctl -u ${svc.unit} -n 50\` (its journal for this run is in the evidence bundle)`);
  if (svc.kind === 'supervisor') lines.push(`supervisord program ${svc.program}: \`supervisorctl${svc.config ? ` -c ${svc.config}` : ''} status ${svc.program}\` and \`tail ${svc.program} stderr\``);
  if (pidfile) {
    const pid = readPid(pidfile);
    lines.push(pid === null ? `no pid in ${pidfile}: nothing started by safe-restart is running` : `pid ${pid} from ${pidfile} is ${alive(pid) ? 'running' : 'not running'}`);
  }
  lines.push(`releases: previous ${previous ?? 'none'}, target ${target ?? 'none'}; last known good: ${store.readRecipeState(recipe.name).lastGoodRelease ?? 'none'}`);
  lines.push(`check first: the service's own log, then the journal ${journal}`);
  lines.push(`when fixed: \`safe-restart recover ${recipe.file}\` re-activates the last good release and proves it healthy`);
  return lines;
}
