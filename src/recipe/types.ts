// The normalised recipe: every duration in milliseconds, every default applied, every check
// carrying its own type and label. This is what the runner, the checks and the plan read.
import type { CheckType } from './constants.js';

export type { CheckType };

export type TcpState = 'open' | 'closed' | 'drained';

export interface TcpProbe {
  type: 'tcp';
  host: string;
  port: number;
  state: TcpState;
  /** "127.0.0.1:${SAFE_RESTART_PORT}": host and port are known once the run binds it (src/checks/tcp.ts parses it then) */
  template?: string;
}

export interface HttpProbe {
  type: 'http';
  url: string;
  method: 'GET' | 'HEAD';
  /** Accepted status codes as [low, high] inclusive ranges ("2xx" is [200, 299]). */
  status: Array<[number, number]>;
  body?: { contains: string } | { regex: string };
  headers: Record<string, string>;
  ca?: string;
  insecure: boolean;
  followRedirects: boolean;
}

export interface UrlProbe {
  type: 'postgres' | 'mysql' | 'redis';
  url: string;
}

export interface CommandProbe {
  type: 'command';
  /** argv (no shell) or a shell string run by /bin/sh -c */
  command: string[] | string;
}

export interface RecipeProbe {
  type: 'recipe';
  /** the other recipe's name; its lock, journals and history live in the same state directory */
  name: string;
}

export type Probe = TcpProbe | HttpProbe | UrlProbe | CommandProbe | RecipeProbe;

export interface CheckTiming {
  intervalMs: number;
  attemptTimeoutMs: number;
  timeoutMs: number;
  initialDelayMs: number;
  successThreshold: number;
  stableForMs: number;
}

export interface CheckSpec extends CheckTiming {
  name: string;
  type: CheckType;
  /** What the check looks at, secrets already redacted: "127.0.0.1:5432", "http://x/healthz". */
  target: string;
  probe: Probe;
  /** gates only: compared with the release that ran before (runner/baseline.ts) */
  baseline?: BaselineSpec;
}

export interface BaselineSpec {
  samples: number;
  /** "1.5x" → 1.5; null = latency not compared */
  latencyP90Factor: number | null;
  /** "+1%" → 0.01 (a fraction); null = error rate not compared */
  errorRateMargin: number | null;
  latencySlackMs: number;
}

export interface StepSpec {
  name: string;
  /** argv (no shell) or a shell string run by /bin/sh -c */
  run: string[] | string;
  timeoutMs: number;
  env: Record<string, string>;
  cwd?: string;
}

export type HookItemSpec = { kind: 'step'; step: StepSpec } | { kind: 'check'; check: CheckSpec };

export type StopSpec =
  | { kind: 'run'; step: StepSpec }
  | { kind: 'signal'; signal: NodeJS.Signals; pidfile: string; graceMs: number; timeoutMs: number };

export type StartSpec =
  | { kind: 'run'; step: StepSpec }
  | {
      kind: 'spawn';
      argv: string[];
      pidfile: string;
      log?: string;
      cwd?: string;
      env: Record<string, string>;
      timeoutMs: number;
    };

/** Who stops and starts the service: the recipe's own commands, systemd, or supervisord. */
export type ServiceSpec =
  | { kind: 'commands'; stop: StopSpec; start: StartSpec }
  | {
      kind: 'systemd';
      /** "order-service.service" (the suffix added when the recipe left it out) */
      unit: string;
      reload: boolean;
      stopTimeoutMs: number | null;
      startTimeoutMs: number | null;
    }
  | { kind: 'supervisor'; program: string; config?: string; serverurl?: string; stopTimeoutMs: number | null; startTimeoutMs: number | null };

/** The load balancer in front of the slots. */
export type TrafficSpec =
  | { kind: 'haproxy'; socket: string; backend: string; servers: Record<string, string>; stateFile?: string }
  | { kind: 'nginx'; upstreamFile: string; upstream: string; servers: Record<string, string>; test: string[] | string; reload: string[] | string; pidfile: string; checkUrl?: string }
  | { kind: 'command'; enable: string[] | string; disable: string[] | string; status?: string[] | string };

/** A blue/green slot or a rolling instance: ${SAFE_RESTART_SLOT} and ${SAFE_RESTART_PORT} while it is handled. */
export interface SlotSpec {
  name: string;
  port: number;
  /** its name in the load balancer */
  server: string;
  /** the release link this slot runs from */
  link: string;
}

export interface DrainSpec {
  timeoutMs: number;
  onTimeout: 'shutdown' | 'proceed' | 'fail';
}

export type StrategySpec =
  | { kind: 'in_place' }
  | { kind: 'blue_green'; slots: [SlotSpec, SlotSpec]; traffic: TrafficSpec; drain: DrainSpec; bakeMs: number; keepPreviousMs: number }
  | { kind: 'rolling'; instances: SlotSpec[]; traffic: TrafficSpec; maxUnavailable: number; drain: DrainSpec; bakeMs: number };

export type ReleaseSpec =
  | { kind: 'symlink'; symlink: string; releasesDir: string }
  | { kind: 'command'; current: StepSpec; activate: StepSpec; exists?: StepSpec };

export interface NotifySpec {
  url: string;
  on: Array<'started' | 'succeeded' | 'rolled_back' | 'failed' | 'aborted'>;
  headers: Record<string, string>;
  format: 'json' | 'slack';
  timeoutMs: number;
}

export interface ResolvedRecipe {
  /** Absolute path of the recipe file (or "<inline>"). */
  file: string;
  name: string;
  description?: string;
  vars: Record<string, string>;
  dependencies: CheckSpec[];
  /** Steps or checks run against the TARGET before anything is stopped. */
  verify: HookItemSpec[];
  release?: ReleaseSpec;
  service: ServiceSpec;
  strategy: StrategySpec;
  /** a gate failure while a dependency is down: wait for it, roll back anyway, or stop (exit 3) */
  onDependencyOutage: 'wait' | 'rollback' | 'stop';
  outageWaitMs: number;
  /** the whole run's time budget (deadline:), null = none */
  deadlineMs: number | null;
  gates: CheckSpec[];
  hooks: {
    beforeStop: HookItemSpec[];
    afterStart: HookItemSpec[];
    onSuccess: HookItemSpec[];
    onRollback: HookItemSpec[];
  };
  rollback: { enabled: boolean; steps: StepSpec[] };
  lock: { timeoutMs: number };
  notify: NotifySpec[];
  confirm: boolean;
}

export const DEFAULTS = {
  intervalMs: 100,
  attemptTimeoutMs: 2_000,
  timeoutMs: 60_000,
  initialDelayMs: 0,
  successThreshold: 1,
  stableForMs: 0,
  stepTimeoutMs: 60_000,
  graceMs: 30_000,
  lockTimeoutMs: 0,
  notifyTimeoutMs: 10_000,
} as const;
