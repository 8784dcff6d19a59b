// A service manager answers a few verbs for the runner — inspect, stop, start (with a watch), evidence, live
// status — one file per manager: commands.ts (the recipe's own stop/start, spawn/pidfile), systemd.ts,
// supervisor.ts. The runner never says "systemctl".
import type { ActionContext } from '../runner/actions.js';
import type { ResolvedRecipe, ServiceSpec } from '../recipe/types.js';
import { runtimeVars } from '../recipe/runtime-vars.js';
import type { Phase } from '../report/events.js';
import type { ServiceWatch } from './watch.js';

export interface ServiceContext extends ActionContext {
  /** when this run started: the journal of a unit is read from here */
  runStartedAt: Date;
  /** the longest gate timeout: whether a restart loop can exhaust a start limit inside the gates */
  gatesTimeoutMs: number;
}

export interface Inspection {
  /** false: the service cannot be managed as written (unit not loaded, supervisord down …): exit 1, nothing touched */
  ok: boolean;
  reason?: string;
  /** the recipe can work, but not as well as written (a stop bound shorter than the unit's own …) */
  warnings: string[];
}

export interface EvidenceFile {
  name: string;
  text: string;
}

export interface StartResult {
  failure: string | null;
  watch: ServiceWatch;
}

export interface ServiceManager {
  /** "systemd unit order-service.service" */
  readonly label: string;
  /** Before anything is touched (run's verify phase, preflight): can it be managed? */
  inspect(ctx: ServiceContext, signal: AbortSignal): Promise<Inspection>;
  stop(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null>;
  start(ctx: ServiceContext, phase: Phase, release: string | null, signal: AbortSignal): Promise<StartResult>;
  /** What the manager knows about this run, for the evidence bundle (logs, unit state); never throws */
  evidence(ctx: ServiceContext): Promise<EvidenceFile[]>;
  /** One line of live state for `status` ("active (running), MainPID 4122, since …"); null when unknown */
  live(signal?: AbortSignal): Promise<string | null>;
}

/** The manager for a recipe's service, loaded lazily so a recipe pays only for its own. */
export async function managerFor(spec: ServiceSpec): Promise<ServiceManager> {
  switch (spec.kind) {
    case 'commands':
      return new (await import('./commands.js')).CommandsManager(spec);
    case 'systemd':
      return new (await import('./systemd.js')).SystemdManager(spec);
    case 'supervisor':
      return new (await import('./supervisor.js')).SupervisorManager(spec);
  }
}

/** Outside a run (validate --live, plan): ask the manager, read-only, whether the recipe can work here as written. */
export async function inspectOutsideRun(recipe: ResolvedRecipe, redact: (t: string) => string, signal: AbortSignal): Promise<Inspection & { label: string }> {
  const manager = await managerFor(recipe.service);
  const ctx: ServiceContext = {
    recipeName: recipe.name,
    runId: 'inspect',
    journal: { write: () => {} },
    emit: () => {},
    redact,
    stepLogDir: null,
    runtime: (phase, release) => runtimeVars({ name: recipe.name, runId: 'inspect', phase, release, previous: null, target: null }),
    failedChecks: [],
    nextStepSeq: () => 0,
    runStartedAt: new Date(),
    gatesTimeoutMs: Math.max(0, ...recipe.gates.map((g) => g.timeoutMs)),
  };
  return { label: manager.label, ...(await manager.inspect(ctx, signal)) };
}
