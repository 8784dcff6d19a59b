// The plan: what a run would do, in order, as data (for --json and the runner's dry run) and as text.
// Pure: reads nothing, touches nothing. Every string in it is redacted.
import { Redactor } from './redact.js';
import { formatMs } from './recipe/duration.js';
import { describeCommand } from './recipe/targets.js';
import type { CheckSpec, HookItemSpec, ResolvedRecipe, ServiceSpec, StartSpec, StepSpec, StopSpec, TrafficSpec } from './recipe/types.js';
import { mentionsRuntimeVars, showTemplate } from './recipe/runtime-vars.js';
import { deadlineBudget, upTimeoutMs, worstCase, type DeadlineBudget, type WorstCase } from './runner/budget.js';

// blue/green adds prepare (the idle slot's link), switch and bake; rolling does all of it per instance in rollout
export type PlanPhaseName = 'dependencies' | 'verify' | 'before_stop' | 'stop' | 'release' | 'prepare' | 'start' | 'after_start' | 'gates' | 'switch' | 'rollout' | 'bake' | 'on_success';
export type RollbackPhaseName = 'stop' | 'release' | 'rollback_steps' | 'start' | 'gates' | 'switch_back' | 'rollback_stop' | 'rollback_rollout' | 'on_rollback';

export interface PlanItem {
  kind: 'check' | 'step' | 'signal' | 'spawn' | 'release';
  name: string;
  /** One readable line: what it does and its limits. */
  detail: string;
}

export interface PlanPhase<N extends string = PlanPhaseName> {
  phase: N;
  title: string;
  items: PlanItem[];
}

export interface PlanOptions {
  /** --release ID; absent means an in-place restart of the current release. */
  release?: string | undefined;
  /** The release active now: a string, null for "none yet" (first run), undefined when only a run can tell. */
  previous?: string | null | undefined;
  /** The loader's redactor; without one, secrets are found from the recipe itself (vars, URLs, headers). */
  redactor?: Redactor | undefined;
  /** Whether releases_dir/TARGET exists (checked by the CLI); undefined when not looked at. */
  targetExists?: boolean | null | undefined;
}

export interface Plan {
  recipe: string;
  file: string;
  description?: string;
  release: {
    mode: 'in-place' | 'switch';
    target: string | null;
    previous: string | null | undefined;
    /** How the release is switched, in words. */
    how: string;
    /** releases_dir/TARGET exists; null when it cannot be known ahead (commands) or there is no target */
    targetExists?: boolean | null;
  };
  /** The run-time variables and what they hold per phase; the recipe's strings show them unresolved. */
  runtime: { used: boolean; values: Record<string, string> };
  /** Every phase at its own deadline, the rollback included */
  worstCase: WorstCase;
  /** with deadline: the budget's arithmetic */
  deadline?: DeadlineBudget;
  phases: PlanPhase[];
  rollback: {
    /** False when a failure after stop can only end in exit 3. */
    possible: boolean;
    reason: string;
    phases: Array<PlanPhase<RollbackPhaseName>>;
  };
  vars: Record<string, string>;
}

const PHASE_TITLES = {
  dependencies: 'dependencies (all must pass before anything is stopped)',
  verify: 'verify (the target release, before anything is stopped; PREVIOUS must still exist to roll back to)',
  before_stop: 'before_stop hooks',
  stop: 'stop',
  release: 'release switch',
  start: 'start',
  after_start: 'after_start hooks',
  gates: 'gates (prove the new release healthy)',
  on_success: 'on_success hooks',
} satisfies Partial<Record<PlanPhaseName, string>>;

const phase = <N extends string>(name: N, title: string, items: PlanItem[]): PlanPhase<N> => ({ phase: name, title, items });

export function buildPlan(recipe: ResolvedRecipe, options: PlanOptions = {}): Plan {
  const redactor = options.redactor ?? redactorFor(recipe);
  const target = options.release ?? null;
  const previous = options.previous;
  const { possible, reason } = rollbackPossibility(recipe, target, previous);
  const strategic = strategyPhases(recipe, target, previous, possible);
  const phases: PlanPhase[] = [
    phase('dependencies', PHASE_TITLES.dependencies, recipe.dependencies.map(checkItem)),
    phase('verify', PHASE_TITLES.verify, [
      ...recipe.verify.map(hookItem),
      ...recipe.gates.filter((g) => g.baseline).map((g): PlanItem => ({ kind: 'check', name: `${g.name} (baseline)`, detail: `baseline of gate ${g.name}: ${g.baseline?.samples} samples of the running release (blue/green: the live slot), by the gate's own probe` })),
    ]),
    phase('before_stop', PHASE_TITLES.before_stop, recipe.hooks.beforeStop.map(hookItem)),
    ...(strategic?.forward ?? [
      phase('stop', PHASE_TITLES.stop, [stopItem(recipe.service)]),
      phase('release', PHASE_TITLES.release, releaseItems(recipe, target, previous)),
      phase('start', PHASE_TITLES.start, [startItem(recipe.service)]),
      phase('after_start', PHASE_TITLES.after_start, recipe.hooks.afterStart.map(hookItem)),
      phase('gates', PHASE_TITLES.gates, recipe.gates.map(checkItem)),
    ]),
    phase('on_success', PHASE_TITLES.on_success, recipe.hooks.onSuccess.map(hookItem)),
  ];

  const rollbackPhases: Array<PlanPhase<RollbackPhaseName>> = strategic
    ? strategic.rollback
    : possible
    ? [
        phase('stop', 'stop what was started', [stopItem(recipe.service)]),
        phase('release', 're-activate the previous release', releaseItems(recipe, previous ?? '(the previous release)', target, true)),
        phase('rollback_steps', 'rollback steps', recipe.rollback.steps.map(stepItem)),
        phase('start', 'start', [startItem(recipe.service)]),
        phase('gates', 'the same gates, against the previous release', recipe.gates.map(checkItem)),
        phase('on_rollback', 'on_rollback hooks', recipe.hooks.onRollback.map(hookItem)),
      ]
    : [phase('stop', 'stop what was started and report what is left (exit 3, needs a human)', [stopItem(recipe.service)])];

  const plan: Plan = {
    recipe: recipe.name,
    file: recipe.file,
    release: { mode: target === null ? 'in-place' : 'switch', target, previous, how: releaseHow(recipe), ...(options.targetExists !== undefined ? { targetExists: options.targetExists } : {}) },
    runtime: runtimeValues(recipe, target, previous),
    worstCase: worstCase(recipe),
    ...(recipe.deadlineMs !== null ? { deadline: deadlineBudget(recipe) as DeadlineBudget } : {}),
    phases,
    rollback: { possible, reason: strategic?.reason ?? reason, phases: rollbackPhases },
    vars: { ...recipe.vars },
  };
  if (recipe.description !== undefined) plan.description = recipe.description;
  return redactDeep(plan, redactor);
}

function runtimeValues(recipe: ResolvedRecipe, target: string | null, previous: string | null | undefined): Plan['runtime'] {
  const prev = previous === undefined ? 'the current release (known when the run starts)' : (previous ?? '(none: first run)');
  const tgt = target ?? (previous === undefined ? 'the current release (in place)' : (previous ?? '(none)'));
  return {
    used: mentionsRuntimeVars([recipe.dependencies, recipe.verify, recipe.gates, recipe.hooks, recipe.service, recipe.rollback, recipe.release ?? null]),
    values: {
      SAFE_RESTART_NAME: recipe.name,
      SAFE_RESTART_RUN_ID: '(the run id)',
      SAFE_RESTART_RELEASE: `${tgt} in dependencies, verify, hooks, start and gates; ${prev} in stop and throughout the rollback`,
      SAFE_RESTART_PREVIOUS_RELEASE: prev,
      SAFE_RESTART_TARGET_RELEASE: tgt,
      SAFE_RESTART_PHASE: 'the phase running (dependencies, verify, gates, rollback_gates …)',
      ...slotValues(recipe),
    },
  };
}

function slotValues(recipe: ResolvedRecipe): Record<string, string> {
  const s = recipe.strategy;
  if (s.kind === 'in_place') return {};
  const slots = s.kind === 'blue_green' ? s.slots : s.instances;
  return {
    SAFE_RESTART_SLOT: `the ${s.kind === 'blue_green' ? 'slot' : 'instance'} being handled (${slots.map((x) => x.name).join(', ')})`,
    SAFE_RESTART_PORT: `its port (${slots.map((x) => `${x.name} ${x.port}`).join(', ')})`,
  };
}

function rollbackPossibility(recipe: ResolvedRecipe, target: string | null, previous: string | null | undefined): { possible: boolean; reason: string } {
  if (!recipe.rollback.enabled) return { possible: false, reason: 'rollback.enabled is false: a failure after stop ends in exit 3 (needs a human)' };
  if (!recipe.release) return { possible: false, reason: 'no release section: this is an in-place restart with nothing to roll back to; a failure after stop ends in exit 3' };
  if (target === null) return { possible: false, reason: 'no --release: an in-place restart has nothing to roll back to; a failure after stop ends in exit 3' };
  if (previous === null) return { possible: false, reason: 'first run: there is no previous release; a failure after stop ends in exit 3' };
  if (previous === target) return { possible: false, reason: `release ${target} is already active: rolling back to it would change nothing; a failure after stop ends in exit 3` };
  const to = previous === undefined ? 'the previous release (determined when the run starts)' : `release ${previous}`;
  return { possible: true, reason: `any failure in stop, release switch, start, after_start or gates rolls back to ${to}: exit 2 when it is healthy again, 3 otherwise` };
}

function releaseHow(recipe: ResolvedRecipe): string {
  const release = recipe.release;
  if (!release) return 'no release section: the service restarts in place';
  if (release.kind === 'symlink') return `symlink ${release.symlink} → ${release.releasesDir}/ID, switched atomically`;
  return `commands: current \`${describeCommand(release.current.run)}\`, activate \`${describeCommand(release.activate.run)}\``;
}

function releaseItems(recipe: ResolvedRecipe, target: string | null, from: string | null | undefined, isRollback = false): PlanItem[] {
  const release = recipe.release;
  const previous = from === undefined ? 'the current release' : from === null ? 'no release yet' : `release ${from}`;
  if (!release) return [{ kind: 'release', name: 'release', detail: 'no release section: nothing to switch, the service restarts in place' }];
  if (target === null) {
    return [{ kind: 'release', name: 'release', detail: 'no --release: nothing to switch, the current release restarts in place' }];
  }
  if (release.kind === 'symlink') {
    return [
      {
        kind: 'release',
        name: isRollback ? 'reactivate' : 'activate',
        detail: `point ${release.symlink} at ${release.releasesDir}/${target} (temporary link renamed over the old one; was ${previous})`,
      },
    ];
  }
  return [
    {
      kind: 'release',
      name: release.activate.name,
      detail: `${describeStep(release.activate)} with SAFE_RESTART_RELEASE=${target} (was ${previous})`,
    },
  ];
}

function timingText(check: CheckSpec): string {
  const parts = [`every ${formatMs(check.intervalMs)}`, `attempt ${formatMs(check.attemptTimeoutMs)}`, `timeout ${formatMs(check.timeoutMs)}`];
  if (check.initialDelayMs > 0) parts.unshift(`after ${formatMs(check.initialDelayMs)}`);
  if (check.successThreshold > 1) parts.push(`${check.successThreshold} passes in a row`);
  if (check.stableForMs > 0) parts.push(`stable for ${formatMs(check.stableForMs)}`);
  return parts.join(', ');
}

function probeText(check: CheckSpec): string {
  const p = check.probe;
  if (p.type === 'http') {
    const extra = [
      p.method !== 'GET' ? p.method : '',
      `status ${p.status.map(([lo, hi]) => (lo === hi ? String(lo) : hi - lo === 99 ? `${lo / 100}xx` : `${lo}-${hi}`)).join('|')}`,
      p.body ? ('contains' in p.body ? `body contains ${JSON.stringify(p.body.contains)}` : `body matches /${p.body.regex}/`) : '',
      Object.keys(p.headers).length ? `headers ${Object.keys(p.headers).join(', ')}` : '',
      p.ca ? `ca ${p.ca}` : '',
      p.insecure ? 'TLS NOT VERIFIED' : '',
      p.followRedirects ? 'follows redirects' : '',
    ].filter(Boolean);
    return `${check.type} ${check.target} (${extra.join(', ')})`;
  }
  if (p.type === 'tcp' && p.state !== 'open') return `${check.type} ${check.target}`;
  return `${check.type} ${check.target}`;
}

function checkItem(check: CheckSpec): PlanItem {
  const label = `${check.type} ${check.target}`;
  const what = probeText(check);
  const named = check.name === label ? what : `${check.name}: ${what}`;
  return { kind: 'check', name: check.name, detail: `${named} — ${timingText(check)}${check.baseline ? `; ${baselineText(check.baseline)}` : ''}` };
}

/** "then 20 samples against the same 20 of the running release (measured in verify): p90 ≤ 1.5× its p90 + 5ms, error rate ≤ its rate +1%" */
export function baselineText(b: NonNullable<CheckSpec['baseline']>): string {
  const rules = [
    ...(b.latencyP90Factor !== null ? [`p90 latency ≤ ${b.latencyP90Factor}× its p90 + ${formatMs(b.latencySlackMs)}`] : []),
    ...(b.errorRateMargin !== null ? [`error rate ≤ its rate +${Math.round(b.errorRateMargin * 1000) / 10}%`] : []),
  ];
  return `then ${b.samples} samples compared with ${b.samples} of the running release taken in verify: ${rules.join(', ')}`;
}

function describeStep(step: StepSpec): string {
  const parts = [`run \`${describeCommand(step.run, 120)}\``, `timeout ${formatMs(step.timeoutMs)}`];
  if (step.cwd) parts.push(`cwd ${step.cwd}`);
  const env = Object.entries(step.env);
  if (env.length) parts.push(`env ${env.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return parts.join(', ');
}

function stepItem(step: StepSpec): PlanItem {
  const named = step.name === describeCommand(step.run) ? '' : `${step.name}: `;
  return { kind: 'step', name: step.name, detail: `${named}${describeStep(step)}` };
}

function hookItem(item: HookItemSpec): PlanItem {
  return item.kind === 'step' ? stepItem(item.step) : checkItem(item.check);
}

function stopItem(service: ServiceSpec): PlanItem {
  if (service.kind === 'systemd') {
    if (service.reload) return { kind: 'step', name: 'stop', detail: `reload: ${service.unit} keeps running (no stop)` };
    return { kind: 'step', name: 'stop', detail: `systemctl stop ${service.unit}, bounded by its TimeoutStopSec + 5s${service.stopTimeoutMs !== null ? ` (stop_timeout ${formatMs(service.stopTimeoutMs)} if longer)` : ''}; then inactive/failed with no MainPID` };
  }
  if (service.kind === 'supervisor') return { kind: 'step', name: 'stop', detail: `supervisorctl stop ${service.program}, timeout ${formatMs(service.stopTimeoutMs ?? 90_000)}` };
  return commandsStopItem(service.stop);
}

function commandsStopItem(stop: StopSpec): PlanItem {
  if (stop.kind === 'run') return { kind: 'step', name: 'stop', detail: describeStep(stop.step) };
  return {
    kind: 'signal',
    name: 'stop',
    detail: `send ${stop.signal} to the pid in ${stop.pidfile}; after ${formatMs(stop.graceMs)} SIGKILL its process group (timeout ${formatMs(stop.timeoutMs)})`,
  };
}

function startItem(service: ServiceSpec): PlanItem {
  if (service.kind === 'systemd') {
    if (service.reload) return { kind: 'step', name: 'start', detail: `systemctl reload ${service.unit} (MainPID must stay the same), then watched: ActiveState, MainPID, NRestarts` };
    return { kind: 'step', name: 'start', detail: `systemctl reset-failed ${service.unit}, systemctl start ${service.unit} (bounded by its TimeoutStartSec + 5s), then watched during after_start and gates: ActiveState, MainPID, NRestarts, InvocationID` };
  }
  if (service.kind === 'supervisor') return { kind: 'step', name: 'start', detail: `supervisorctl start ${service.program}, then watched: BACKOFF, FATAL, EXITED or a new pid fail the phase at once` };
  return commandsStartItem(service.start);
}

function commandsStartItem(start: StartSpec): PlanItem {
  if (start.kind === 'run') return { kind: 'step', name: 'start', detail: describeStep(start.step) };
  const parts = [`spawn \`${describeCommand(start.argv, 120)}\` detached`, `pid to ${start.pidfile}`];
  if (start.log) parts.push(`output to ${start.log}`);
  if (start.cwd) parts.push(`cwd ${start.cwd}`);
  const env = Object.entries(start.env);
  if (env.length) parts.push(`env ${env.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  parts.push(`timeout ${formatMs(start.timeoutMs)}`);
  return { kind: 'spawn', name: 'start', detail: parts.join(', ') };
}

/** blue/green and rolling: what replaces stop → release → start → gates, and their own ways back. */
function strategyPhases(
  recipe: ResolvedRecipe,
  target: string | null,
  previous: string | null | undefined,
  possible: boolean,
): { forward: PlanPhase[]; rollback: Array<PlanPhase<RollbackPhaseName>>; reason: string } | null {
  const s = recipe.strategy;
  if (s.kind === 'in_place') return null;
  const tgt = target ?? 'the current release';
  const prev = previous === undefined ? 'the previous release' : previous === null ? 'no release yet' : `release ${previous}`;
  const lb = trafficText(s.traffic);
  const drain = `drain (bounded by ${formatMs(s.drain.timeoutMs)}; on time-out: ${s.drain.onTimeout})`;
  const start = startItem(recipe.service);
  const stop = stopItem(recipe.service);
  const gateItems = recipe.gates.map(checkItem);
  const bake = (what: string): PlanPhase => phase('bake', s.bakeMs > 0 ? `bake ${formatMs(s.bakeMs)}: ${what}` : 'bake (bake: 0, none)', s.bakeMs > 0 ? gateItems : []);
  const up = `waited UP (bounded by ${formatMs(upTimeoutMs(recipe))})`;
  const onRollback = phase<RollbackPhaseName>('on_rollback', 'on_rollback hooks', recipe.hooks.onRollback.map(hookItem));
  if (s.kind === 'blue_green') {
    const [a, b] = s.slots;
    const slots = `${a.name} (port ${a.port}, server ${a.server}) and ${b.name} (port ${b.port}, server ${b.server})`;
    return {
      forward: [
        phase('prepare', `prepare the idle slot (live slot: from ${lb}, cross-checked with the state directory; slots ${slots})`, [
          { kind: 'release', name: 'slot link', detail: `point the idle slot's link (${a.link} or ${b.link}) at ${recipe.release?.kind === 'symlink' ? `${recipe.release.releasesDir}/` : 'release '}${tgt}` },
        ]),
        phase('start', 'start the idle slot (the live one keeps serving)', [start]),
        phase('after_start', PHASE_TITLES.after_start, recipe.hooks.afterStart.map(hookItem)),
        phase('gates', "gates, on the idle slot's own port (never through the load balancer)", gateItems),
        phase('switch', `switch in ${lb} (never a server out unless another one is UP)`, [
          { kind: 'step', name: 'ready', detail: `the idle slot → ready, ${up}` },
          { kind: 'step', name: 'drain', detail: `the live slot → ${drain}, until it has no sessions` },
        ]),
        bake(`the gates and ${lb}'s 5xx count must keep passing; a failure switches back`),
      ],
      rollback: [
        phase<RollbackPhaseName>('rollback_stop', 'before the switch: stop the idle slot (traffic never saw it)', [stop]),
        phase<RollbackPhaseName>('switch_back', `after the switch: back to the old slot, still running${s.keepPreviousMs > 0 ? ` (kept ${formatMs(s.keepPreviousMs)} after a success)` : ''} — no cold start`, [
          { kind: 'step', name: 'ready', detail: `the old slot → ready in ${lb}, ${up}` },
          { kind: 'step', name: 'drain', detail: `the new slot → ${drain}` },
        ]),
        phase<RollbackPhaseName>('rollback_stop', 'then stop the new slot', [stop]),
        onRollback,
      ],
      reason: possible
        ? `a failure up to the gates stops the idle slot, traffic stays on ${prev}; a failure in the switch or the bake switches back to ${prev}, still running: exit 2 when it serves again, 3 otherwise`
        : `a failure up to the gates stops the idle slot (traffic never saw it); after the switch there is no previous slot to switch back to (${prev}): exit 3`,
    };
  }
  const names = s.instances.map((i) => `${i.name} (port ${i.port}, server ${i.server})`).join(', ');
  return {
    forward: [
      phase('rollout', `rollout through ${lb}, ${s.maxUnavailable} at a time, never the last one UP taken out: ${names}`, [
        { kind: 'step', name: 'per instance', detail: `${drain} → stop → its link at ${tgt} → start → gates on its own port → back into rotation, ${up}` },
        stop,
        start,
        ...gateItems,
      ]),
      bake(`the gates of every instance must keep passing`),
    ],
    rollback: [
      phase<RollbackPhaseName>('rollback_rollout', `the instances already updated, newest first: drain → stop → back on their own previous release (${prev}) → start → gates → back in, waited UP`, gateItems),
      onRollback,
    ],
    reason: possible
      ? `a failure rolls the instances already updated back to ${prev}, newest first, each gated: exit 2 when they serve again, 3 otherwise`
      : `a failure leaves the instances already updated as they are (${prev === 'no release yet' ? 'first run: nothing to roll back to' : 'no rollback'}): exit 3`,
  };
}

function trafficText(t: TrafficSpec): string {
  if (t.kind === 'haproxy') return `haproxy backend ${t.backend}`;
  if (t.kind === 'nginx') return `nginx upstream ${t.upstream}`;
  return 'the load balancer commands';
}

/** The plan as text, in run order, with the rollback path after it. */
export function renderPlan(plan: Plan): string {
  const lines: string[] = [];
  lines.push(`Plan for ${plan.recipe} (${plan.file})`);
  if (plan.description) lines.push(plan.description);
  const previous = plan.release.previous === undefined ? 'current release' : plan.release.previous === null ? 'none yet' : plan.release.previous;
  lines.push(
    plan.release.mode === 'switch'
      ? `Release: ${previous} → ${plan.release.target} (${plan.release.how})`
      : `Release: in-place restart of the ${plan.release.previous ? `release ${plan.release.previous}` : 'current release'} (${plan.release.how})`,
  );
  const vars = Object.entries(plan.vars);
  if (vars.length) lines.push(`Vars: ${vars.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  if (plan.release.targetExists === false) lines.push(`Target: release ${plan.release.target} does NOT exist – a run would abort before stopping anything`);
  if (plan.runtime.used) {
    lines.push('Run-time variables (shown unresolved below, bound when each step or check runs):');
    for (const [k, v] of Object.entries(plan.runtime.values)) lines.push(`  \${${k}} = ${v}`);
  }
  const w = plan.worstCase;
  lines.push(`Worst case: ${formatMs(w.totalMs)} (forward ${formatMs(w.forwardMs)}${w.rollback.length > 0 ? `, rollback ${formatMs(w.rollbackMs)}` : ', no rollback'}), every phase at its own deadline`);
  if (plan.deadline) lines.push(deadlineLine(plan.deadline));
  lines.push('');
  // the first phase that changes something, and the last that can still fail the run (before on_success)
  const stopIndex = plan.phases.findIndex((p) => p.phase === 'stop' || p.phase === 'prepare' || p.phase === 'rollout') + 1;
  const gatesIndex = plan.phases.length - 1;
  plan.phases.forEach((p, i) => {
    lines.push(`${String(i + 1).padStart(2)}. ${p.title}`);
    if (p.items.length === 0) lines.push('      (none)');
    for (const item of p.items) lines.push(`      - ${item.detail}`);
  });
  lines.push('');
  lines.push(`Steps 1–${stopIndex - 1} change nothing: if they fail, the run ends with exit 1 and nothing touched.`);
  lines.push(`If steps ${stopIndex}–${gatesIndex} fail: ${plan.rollback.reason}.`);
  if (plan.rollback.possible) lines.push('Rollback path:');
  else if (plan.rollback.phases.length > 1) lines.push('Ways back:');
  plan.rollback.phases.forEach((p, i) => {
    lines.push(`R${i + 1}. ${p.title}`);
    if (p.items.length === 0) lines.push('      (none)');
    for (const item of p.items) lines.push(`      - ${item.detail}`);
  });
  return lines.join('\n');
}

// Without the loader's redactor, the recipe itself says what is secret.
function redactorFor(recipe: ResolvedRecipe): Redactor {
  const redactor = new Redactor();
  for (const [name, value] of Object.entries(recipe.vars)) redactor.addVariable(name, value);
  const checks = [...recipe.dependencies, ...recipe.gates, ...Object.values(recipe.hooks).flat().flatMap((h) => (h.kind === 'check' ? [h.check] : []))];
  for (const check of checks) {
    if (check.probe.type === 'http') {
      redactor.addUrl(check.probe.url);
      for (const [k, v] of Object.entries(check.probe.headers)) if (/authorization|cookie|token|key|secret|password/i.test(k)) redactor.addSecret(v);
    } else if ('url' in check.probe) redactor.addUrl(check.probe.url);
  }
  for (const n of recipe.notify) redactor.addUrl(n.url);
  return redactor;
}

function redactDeep<T>(value: T, redactor: Redactor): T {
  if (typeof value === 'string') return redactor.redact(showTemplate(value)) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, redactor)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, redactor)])) as T;
  }
  return value;
}

/** "Deadline 2m: fits – …" or "Deadline 1m: does NOT fit – a run is refused before anything is stopped: …" */
export function deadlineLine(b: DeadlineBudget): string {
  return b.fits
    ? `Deadline ${formatMs(b.deadlineMs)}: fits, ${formatMs(b.slackMs)} left for dependencies and gates (${b.arithmetic}); gates are cut so the rollback's ${formatMs(b.reserveMs)} are always left`
    : `Deadline ${formatMs(b.deadlineMs)}: does NOT fit – a run is refused before anything is stopped (${b.arithmetic})`;
}
