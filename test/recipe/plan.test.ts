import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildPlan, renderPlan } from '../../src/plan.js';
import { load } from './helpers.js';

const RECIPE = `version: 1
name: order-service
vars:
  DB_PASSWORD: \${PGPASS}
dependencies:
  - name: orders-db
    postgres: postgres://orders:\${DB_PASSWORD}@127.0.0.1:5432/orders
  - tcp: 127.0.0.1:9092
release:
  symlink: /srv/order/current
  releases_dir: /srv/order/releases
hooks:
  before_stop: [{ name: drain, run: lb drain }]
  after_start: [{ tcp: 127.0.0.1:8080 }]
  on_success: [{ run: lb enable }]
  on_rollback: [{ run: lb enable-old }]
stop: { run: systemctl stop order-service }
start:
  run: systemctl start order-service
  env: { DB_URL: "postgres://orders:\${DB_PASSWORD}@127.0.0.1/orders" }
gates:
  - name: healthz
    http: { url: http://127.0.0.1:8080/healthz, headers: { Authorization: "Bearer \${TOKEN}" } }
    stable_for: 10s
rollback:
  steps: [{ run: "echo \${DB_PASSWORD}" }]
`;
const ENV = { PGPASS: 'pg-very-secret', TOKEN: 'bearer-very-secret' };

describe('buildPlan', () => {
  const loaded = load(RECIPE, { env: ENV });

  it('lists the phases in run order', () => {
    const plan = buildPlan(loaded.recipe, { release: '2026-11-21', previous: '2026-11-20', redactor: loaded.redactor });
    expect(plan.phases.map((p) => p.phase)).toEqual(['dependencies', 'verify', 'before_stop', 'stop', 'release', 'start', 'after_start', 'gates', 'on_success']);
    expect(plan.phases[0]?.items.map((i) => i.name)).toEqual(['orders-db', 'tcp 127.0.0.1:9092']);
    expect(plan.phases[4]?.items[0]?.detail).toBe(
      'point /srv/order/current at /srv/order/releases/2026-11-21 (temporary link renamed over the old one; was release 2026-11-20)',
    );
    expect(plan.release).toEqual({
      mode: 'switch',
      target: '2026-11-21',
      previous: '2026-11-20',
      how: 'symlink /srv/order/current → /srv/order/releases/ID, switched atomically',
    });
    expect(plan.rollback.possible).toBe(true);
    expect(plan.rollback.phases.map((p) => p.phase)).toEqual(['stop', 'release', 'rollback_steps', 'start', 'gates', 'on_rollback']);
    expect(plan.rollback.phases[1]?.items[0]?.detail).toContain('/srv/order/releases/2026-11-20');
  });

  it('says when there is nothing to roll back to', () => {
    expect(buildPlan(loaded.recipe, {}).rollback).toMatchObject({ possible: false, reason: expect.stringContaining('in-place restart') });
    expect(buildPlan(loaded.recipe, { release: 'b', previous: null }).rollback).toMatchObject({ possible: false, reason: expect.stringContaining('first run') });
    expect(buildPlan(loaded.recipe, { release: 'b', previous: 'b' }).rollback).toMatchObject({ possible: false, reason: expect.stringContaining('already active') });
  });

  it('never contains a secret, with or without the loader redactor', () => {
    for (const redactor of [loaded.redactor, undefined]) {
      const plan = buildPlan(loaded.recipe, { release: 'x', previous: 'y', redactor });
      const out = `${JSON.stringify(plan)}\n${renderPlan(plan)}`;
      expect(out).not.toContain('pg-very-secret');
      expect(out).toContain('DB_PASSWORD=***');
    }
    // The header's token came from the environment, so only the loader's redactor knows it by name.
    const plan = buildPlan(loaded.recipe, { release: 'x', redactor: loaded.redactor });
    expect(JSON.stringify(plan)).not.toContain('bearer-very-secret');
  });

  it('renders readable text in the same order', () => {
    const text = renderPlan(buildPlan(loaded.recipe, { release: '2026-11-21', previous: '2026-11-20', redactor: loaded.redactor }));
    const order = ['1. dependencies', '2. verify', '3. before_stop', '4. stop', '5. release switch', '6. start', '7. after_start', '8. gates', '9. on_success', 'R1. stop', 'R6. on_rollback'];
    const positions = order.map((s) => text.indexOf(s));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(text).toContain('Release: 2026-11-20 → 2026-11-21');
    expect(text).toContain('- orders-db: postgres 127.0.0.1:5432/orders — every 100ms, attempt 2s, timeout 1m');
    expect(text).toContain('- healthz: http http://127.0.0.1:8080/healthz (status 2xx, headers Authorization) — every 100ms, attempt 2s, timeout 1m, stable for 10s');
    expect(text).toContain('- drain: run `lb drain`, timeout 1m');
    expect(text).toContain('env DB_URL=postgres://orders:***@127.0.0.1/orders');
  });
});

// the shipped examples, as a user would read their plan before a first blue/green or rolling run
const example = (name: string) => load(readFileSync(new URL(`../../recipes/${name}`, import.meta.url), 'utf8'));

describe('buildPlan with a strategy', () => {
  it('blue/green: the idle slot is prepared, started and gated on its own port before any switch; two ways back', () => {
    const plan = buildPlan(example('blue-green-haproxy.yaml').recipe, { release: 'v42', previous: 'v41' });
    expect(plan.phases.map((p) => p.phase)).toEqual(['dependencies', 'verify', 'before_stop', 'prepare', 'start', 'after_start', 'gates', 'switch', 'bake', 'on_success']);
    expect(plan.rollback.phases.map((p) => p.phase)).toEqual(['rollback_stop', 'switch_back', 'rollback_stop', 'on_rollback']);
    expect(plan.runtime.values).toMatchObject({ SAFE_RESTART_SLOT: 'the slot being handled (blue, green)', SAFE_RESTART_PORT: 'its port (blue 8081, green 8082)' });
    const text = renderPlan(plan);
    // nothing is stopped before the switch: the in-place "stop" and "release switch" phases are not there
    expect(text).not.toMatch(/^ *\d+\. stop$|release switch/m);
    expect(text).toContain(' 4. prepare the idle slot');
    expect(text).toContain('- the idle slot → ready, waited UP (bounded by 1m2s)');
    expect(text).toContain('- the live slot → drain (bounded by 30s; on time-out: shutdown), until it has no sessions');
    expect(text).toContain('Steps 1–3 change nothing');
    expect(text).toContain('If steps 4–9 fail: a failure up to the gates stops the idle slot, traffic stays on release v41; a failure in the switch or the bake switches back to release v41, still running');
  });

  it('rolling: one rollout phase over the instances, the way back newest first', () => {
    const plan = buildPlan(example('rolling-haproxy.yaml').recipe, { release: 'v42', previous: 'v41' });
    expect(plan.phases.map((p) => p.phase)).toEqual(['dependencies', 'verify', 'before_stop', 'rollout', 'bake', 'on_success']);
    expect(plan.rollback.phases.map((p) => p.phase)).toEqual(['rollback_rollout', 'on_rollback']);
    const text = renderPlan(plan);
    expect(text).toMatch(/ 4\. rollout through haproxy backend order, 1 at a time, never the last one UP taken out: a \(port 8081, server order_a\), b \(port 8082, server order_b\), c \(port 8083, server order_c\)/);
    expect(text).toContain('If steps 4–5 fail: a failure rolls the instances already updated back to release v41, newest first, each gated');
  });
});
