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
