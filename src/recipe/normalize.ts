// Step 5 of loading: the written recipe (schema-valid, rules passed) → ResolvedRecipe. Durations become
// milliseconds, defaults from DEFAULTS are applied, every check gets its type and a readable, redacted label.
import type { Redactor } from '../redact.js';
import { parseDuration } from './duration.js';
import { CHECK_TYPES } from './constants.js';
import type { WrittenCheck, WrittenRecipe, WrittenRunStep, WrittenTraffic } from './schema.js';
import { describeCommand as describeWritten, describeDatabaseUrl, formatHostPort, parseHostPort } from './targets.js';
import { mentionsRuntimeVars, showTemplate } from './runtime-vars.js';
import { dirname, join } from 'node:path';
import {
  DEFAULTS,
  type BaselineSpec,
  type CheckSpec,
  type CheckTiming,
  type CheckType,
  type HookItemSpec,
  type HttpProbe,
  type NotifySpec,
  type Probe,
  type ReleaseSpec,
  type ResolvedRecipe,
  type ServiceSpec,
  type SlotSpec,
  type StrategySpec,
  type TrafficSpec,
  type DrainSpec,
  type StartSpec,
  type StepSpec,
  type StopSpec,
} from './types.js';

export interface NormalizeContext {
  /** Absolute path of the recipe file. */
  file: string;
  vars: Record<string, string>;
  redactor: Redactor;
}

// labels show run-time references as written
const describeCommand = (command: string | string[]): string => showTemplate(describeWritten(command));

function ms(value: string | number | undefined, fallback: number): number {
  return value === undefined ? fallback : (parseDuration(value) ?? fallback);
}

export function checkType(check: WrittenCheck): CheckType {
  const type = CHECK_TYPES.find((t) => check[t] !== undefined);
  if (!type) throw new Error('checkType: the check has no type key (rules.ts must run first)');
  return type;
}

/** What the check looks at, unredacted: "127.0.0.1:9092", "http://x/healthz", "127.0.0.1:5432/orders". */
function checkTarget(check: WrittenCheck): string {
  switch (checkType(check)) {
    case 'tcp': {
      const tcp = check.tcp as NonNullable<WrittenCheck['tcp']>;
      if (typeof tcp === 'string') {
        const parsed = parseHostPort(tcp);
        return parsed.ok ? formatHostPort(parsed.value.host, parsed.value.port) : tcp;
      }
      const where = formatHostPort(tcp.host, tcp.port);
      return tcp.state && tcp.state !== 'open' ? `${where} ${tcp.state}` : where;
    }
    case 'http': {
      const http = check.http as NonNullable<WrittenCheck['http']>;
      return typeof http === 'string' ? http : http.url;
    }
    case 'postgres':
    case 'mysql':
    case 'redis': {
      const url = check[checkType(check) as 'postgres'] as string;
      try {
        return describeDatabaseUrl(new URL(url));
      } catch {
        return url;
      }
    }
    case 'command':
      return describeCommand(check.command as string | string[]);
    case 'recipe':
      return check.recipe as string;
  }
}

/** The default name of a check: its type and target, e.g. "tcp 127.0.0.1:9092". Not redacted. */
export function checkLabel(check: WrittenCheck): string {
  return `${checkType(check)} ${checkTarget(check)}`;
}

function timing(check: WrittenCheck, recipe: WrittenRecipe): CheckTiming {
  const d = recipe.defaults ?? {};
  const timeoutMs = ms(check.timeout ?? d.timeout, DEFAULTS.timeoutMs);
  const attemptWritten = check.attempt_timeout ?? d.attempt_timeout;
  return {
    intervalMs: ms(check.interval ?? d.interval, DEFAULTS.intervalMs),
    // The built-in attempt timeout never outlasts the check's own timeout.
    attemptTimeoutMs: attemptWritten === undefined ? Math.min(DEFAULTS.attemptTimeoutMs, timeoutMs) : ms(attemptWritten, DEFAULTS.attemptTimeoutMs),
    timeoutMs,
    initialDelayMs: ms(check.initial_delay, DEFAULTS.initialDelayMs),
    successThreshold: check.success_threshold ?? DEFAULTS.successThreshold,
    stableForMs: ms(check.stable_for, DEFAULTS.stableForMs),
  };
}

/** "2xx" → [200, 299]; 204 → [204, 204]. */
function statusRanges(status: NonNullable<Exclude<WrittenCheck['http'], string | undefined>['status']> | undefined): Array<[number, number]> {
  const items = status === undefined ? ['2xx'] : Array.isArray(status) ? status : [status];
  return items.map((s): [number, number] => {
    if (typeof s === 'number') return [s, s];
    const base = Number(s[0]) * 100;
    return [base, base + 99];
  });
}

function probe(check: WrittenCheck): Probe {
  const type = checkType(check);
  switch (type) {
    case 'tcp': {
      const tcp = check.tcp as NonNullable<WrittenCheck['tcp']>;
      if (typeof tcp === 'string') {
        if (mentionsRuntimeVars(tcp)) return { type: 'tcp', host: '', port: 0, state: 'open', template: tcp };
        const parsed = parseHostPort(tcp);
        if (!parsed.ok) throw new Error(`normalize: invalid tcp target ${tcp} (rules.ts must run first)`);
        return { type: 'tcp', host: parsed.value.host, port: parsed.value.port, state: 'open' };
      }
      return { type: 'tcp', host: tcp.host, port: tcp.port, state: tcp.state ?? 'open' };
    }
    case 'http': {
      const http = check.http as NonNullable<WrittenCheck['http']>;
      const spec = typeof http === 'string' ? { url: http } : http;
      const out: HttpProbe = {
        type: 'http',
        url: spec.url,
        method: 'method' in spec && spec.method ? spec.method : 'GET',
        status: statusRanges('status' in spec ? spec.status : undefined),
        headers: 'headers' in spec && spec.headers ? { ...spec.headers } : {},
        insecure: 'insecure' in spec ? spec.insecure === true : false,
        followRedirects: 'follow_redirects' in spec ? spec.follow_redirects === true : false,
      };
      if ('body' in spec && spec.body !== undefined) out.body = typeof spec.body === 'string' ? { contains: spec.body } : { regex: spec.body.regex };
      if ('ca' in spec && spec.ca !== undefined) out.ca = spec.ca;
      return out;
    }
    case 'postgres':
    case 'mysql':
    case 'redis':
      return { type, url: check[type] as string };
    case 'command':
      return { type: 'command', command: copyCommand(check.command as string | string[]) };
    case 'recipe':
      return { type: 'recipe', name: check.recipe as string };
  }
}

function copyCommand(command: string | string[]): string | string[] {
  return typeof command === 'string' ? command : [...command];
}

export function normalizeCheck(check: WrittenCheck, recipe: WrittenRecipe, redactor: Redactor): CheckSpec {
  const target = redactor.redact(showTemplate(checkTarget(check)));
  return {
    name: check.name ?? redactor.redact(showTemplate(checkLabel(check))),
    type: checkType(check),
    target,
    probe: probe(check),
    ...timing(check, recipe),
    ...(check.baseline ? { baseline: baselineSpec(check.baseline) } : {}),
  };
}

export const BASELINE_DEFAULTS = { samples: 20, latencySlackMs: 5 } as const;

function baselineSpec(b: NonNullable<WrittenCheck['baseline']>): BaselineSpec {
  return {
    samples: b.samples ?? BASELINE_DEFAULTS.samples,
    latencyP90Factor: b.latency_p90 === undefined ? null : Number(b.latency_p90.slice(0, -1)),
    errorRateMargin: b.error_rate === undefined ? null : Number(b.error_rate.replace(/^\+/, '').slice(0, -1)) / 100,
    latencySlackMs: ms(b.latency_slack, BASELINE_DEFAULTS.latencySlackMs),
  };
}

function normalizeStep(step: WrittenRunStep | { run: string | string[]; timeout?: string | number; env?: Record<string, string>; cwd?: string; name?: string }, fallbackName: string): StepSpec {
  const out: StepSpec = {
    name: step.name ?? fallbackName,
    run: copyCommand(step.run),
    timeoutMs: ms(step.timeout, DEFAULTS.stepTimeoutMs),
    env: { ...(step.env ?? {}) },
  };
  if (step.cwd !== undefined) out.cwd = step.cwd;
  return out;
}

function hookItems(items: Array<WrittenRunStep | WrittenCheck> | undefined, recipe: WrittenRecipe, redactor: Redactor): HookItemSpec[] {
  return (items ?? []).map((item): HookItemSpec => {
    if ('run' in item && item.run !== undefined) {
      const step = item as WrittenRunStep;
      return { kind: 'step', step: normalizeStep(step, redactor.redact(describeCommand(step.run))) };
    }
    return { kind: 'check', check: normalizeCheck(item as WrittenCheck, recipe, redactor) };
  });
}

function normalizeRelease(recipe: WrittenRecipe): ReleaseSpec | undefined {
  const r = recipe.release;
  if (!r) return undefined;
  if (r.symlink !== undefined && r.releases_dir !== undefined) return { kind: 'symlink', symlink: r.symlink, releasesDir: r.releases_dir };
  if (r.current && r.activate) {
    const spec: ReleaseSpec = {
      kind: 'command',
      current: normalizeStep({ run: r.current.run }, 'current release'),
      activate: normalizeStep(r.activate, 'activate release'),
    };
    if (r.exists) spec.exists = normalizeStep(r.exists, 'release exists');
    return spec;
  }
  throw new Error('normalize: incomplete release (rules.ts must run first)');
}

function normalizeStop(recipe: WrittenRecipe): StopSpec {
  const stop = recipe.stop;
  if (!stop) throw new Error('normalize: no stop (rules.ts must run first)');
  if (stop.signal !== undefined && stop.pidfile !== undefined) {
    return {
      kind: 'signal',
      signal: stop.signal as NodeJS.Signals,
      pidfile: stop.pidfile,
      graceMs: ms(stop.grace, DEFAULTS.graceMs),
      timeoutMs: ms(stop.timeout, DEFAULTS.stepTimeoutMs),
    };
  }
  if (stop.run === undefined) throw new Error('normalize: stop has neither run nor signal (rules.ts must run first)');
  return { kind: 'run', step: normalizeStep({ ...stop, run: stop.run }, 'stop') };
}

function normalizeStart(recipe: WrittenRecipe): StartSpec {
  const start = recipe.start;
  if (!start) throw new Error('normalize: no start (rules.ts must run first)');
  if (start.spawn !== undefined && start.pidfile !== undefined) {
    const out: StartSpec = {
      kind: 'spawn',
      argv: [...start.spawn],
      pidfile: start.pidfile,
      env: { ...(start.env ?? {}) },
      timeoutMs: ms(start.timeout, DEFAULTS.stepTimeoutMs),
    };
    if (start.log !== undefined) out.log = start.log;
    if (start.cwd !== undefined) out.cwd = start.cwd;
    return out;
  }
  if (start.run === undefined) throw new Error('normalize: start has neither run nor spawn (rules.ts must run first)');
  return { kind: 'run', step: normalizeStep({ ...start, run: start.run }, 'start') };
}

function normalizeTraffic(t: WrittenTraffic, slots: SlotSpec[]): TrafficSpec {
  if (t.haproxy) {
    const servers = Object.fromEntries(slots.map((s) => [s.name, t.haproxy?.servers?.[s.name] ?? s.server]));
    return { kind: 'haproxy', socket: t.haproxy.socket, backend: t.haproxy.backend, servers, ...(t.haproxy.state_file ? { stateFile: t.haproxy.state_file } : {}) };
  }
  if (t.nginx) {
    const servers = Object.fromEntries(slots.map((s) => [s.name, t.nginx?.servers?.[s.name] ?? `127.0.0.1:${s.port}`]));
    return {
      kind: 'nginx',
      upstreamFile: t.nginx.upstream_file,
      upstream: t.nginx.upstream,
      servers,
      test: t.nginx.test ?? ['nginx', '-t'],
      reload: t.nginx.reload ?? ['nginx', '-s', 'reload'],
      pidfile: t.nginx.pidfile,
      ...(t.nginx.check_url ? { checkUrl: t.nginx.check_url } : {}),
    };
  }
  if (t.command) return { kind: 'command', enable: t.command.enable, disable: t.command.disable, ...(t.command.status ? { status: t.command.status } : {}) };
  throw new Error('normalize: traffic has no provider (rules.ts must run first)');
}

function normalizeStrategy(recipe: WrittenRecipe): StrategySpec {
  const s = recipe.strategy;
  if (s === undefined || s === 'in_place') return { kind: 'in_place' };
  const releasesDir = recipe.release?.releases_dir ?? '.';
  const drain = (d: { timeout?: string | number; on_timeout?: DrainSpec['onTimeout'] } | undefined): DrainSpec => ({ timeoutMs: ms(d?.timeout, 30_000), onTimeout: d?.on_timeout ?? 'shutdown' });
  if ('blue_green' in s) {
    const bg = s.blue_green;
    const linksDir = bg.links_dir ?? join(dirname(releasesDir.replace(/\/+$/, '')), 'slots');
    const slots = Object.entries(bg.slots).map(([name, v]): SlotSpec => ({ name, port: v.port, server: name, link: join(linksDir, name) }));
    return {
      kind: 'blue_green',
      slots: slots as [SlotSpec, SlotSpec],
      traffic: normalizeTraffic(bg.traffic, slots),
      drain: drain(bg.drain),
      bakeMs: ms(bg.bake, 0),
      keepPreviousMs: ms(bg.keep_previous, 0),
    };
  }
  const r = s.rolling;
  const linksDir = r.links_dir ?? join(dirname(releasesDir.replace(/\/+$/, '')), 'slots');
  const instances = r.instances.map((i): SlotSpec => ({ name: i.name, port: i.port, server: i.server ?? i.name, link: join(linksDir, i.name) }));
  return { kind: 'rolling', instances, traffic: normalizeTraffic(r.traffic, instances), maxUnavailable: r.max_unavailable ?? 1, drain: drain(r.drain), bakeMs: ms(r.bake, 0) };
}

function normalizeService(recipe: WrittenRecipe): ServiceSpec {
  const s = recipe.service;
  if (!s) return { kind: 'commands', stop: normalizeStop(recipe), start: normalizeStart(recipe) };
  const stopTimeoutMs = s.stop_timeout === undefined ? null : ms(s.stop_timeout, 0);
  const startTimeoutMs = s.start_timeout === undefined ? null : ms(s.start_timeout, 0);
  if (s.systemd !== undefined) {
    const unit = /\.(service|socket|target|mount|timer|path|scope|slice)$/.test(s.systemd) ? s.systemd : `${s.systemd}.service`;
    return { kind: 'systemd', unit, reload: s.reload ?? false, stopTimeoutMs, startTimeoutMs };
  }
  if (s.supervisor !== undefined) {
    const out: ServiceSpec = { kind: 'supervisor', program: s.supervisor.program, stopTimeoutMs, startTimeoutMs };
    if (s.supervisor.config !== undefined) out.config = s.supervisor.config;
    if (s.supervisor.serverurl !== undefined) out.serverurl = s.supervisor.serverurl;
    return out;
  }
  throw new Error('normalize: service has neither systemd nor supervisor (rules.ts must run first)');
}

const DEFAULT_NOTIFY_ON: NotifySpec['on'] = ['succeeded', 'rolled_back', 'failed'];

export function normalizeRecipe(recipe: WrittenRecipe, context: NormalizeContext): ResolvedRecipe {
  const { redactor } = context;
  const out: ResolvedRecipe = {
    file: context.file,
    name: recipe.name,
    vars: { ...context.vars },
    dependencies: (recipe.dependencies ?? []).map((c) => normalizeCheck(c, recipe, redactor)),
    verify: hookItems(recipe.verify, recipe, redactor),
    service: normalizeService(recipe),
    strategy: normalizeStrategy(recipe),
    onDependencyOutage: recipe.on_dependency_outage ?? 'wait',
    outageWaitMs: ms(recipe.outage_wait, 120_000),
    deadlineMs: recipe.deadline === undefined ? null : ms(recipe.deadline, 0),
    gates: (recipe.gates ?? []).map((c) => normalizeCheck(c, recipe, redactor)),
    hooks: {
      beforeStop: hookItems(recipe.hooks?.before_stop, recipe, redactor),
      afterStart: hookItems(recipe.hooks?.after_start, recipe, redactor),
      onSuccess: hookItems(recipe.hooks?.on_success, recipe, redactor),
      onRollback: hookItems(recipe.hooks?.on_rollback, recipe, redactor),
    },
    rollback: {
      enabled: recipe.rollback?.enabled ?? true,
      steps: (recipe.rollback?.steps ?? []).map((s) => normalizeStep(s, redactor.redact(describeCommand(s.run)))),
    },
    lock: { timeoutMs: ms(recipe.lock?.timeout, DEFAULTS.lockTimeoutMs) },
    notify: (recipe.notify ?? []).map((n) => ({
      url: n.url,
      on: n.on ? [...n.on] : [...DEFAULT_NOTIFY_ON],
      headers: { ...(n.headers ?? {}) },
      format: n.format ?? 'json',
      timeoutMs: ms(n.timeout, DEFAULTS.notifyTimeoutMs),
    })),
    confirm: recipe.confirm ?? false,
  };
  if (recipe.description !== undefined) out.description = recipe.description;
  const release = normalizeRelease(recipe);
  if (release) out.release = release;
  return out;
}
