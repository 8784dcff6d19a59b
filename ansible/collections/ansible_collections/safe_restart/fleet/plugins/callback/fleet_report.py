# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_report
type: aggregate
short_description: One report of a safe-restart rollout, per host, written even when the rollout halts
version_added: 0.1.0
description:
  - Follows every C(safe_restart.fleet.safe_restart) task of the playbook and, when the playbook ends (complete,
    halted by C(max_fail_percentage) / C(any_errors_fatal), or failed), writes one JSON report and a text table
    beside it (same path, C(.txt)), and prints the table.
  - Per host, one status - V(succeeded), V(already_current), V(rolled_back), V(failed), V(aborted), V(locked),
    V(unreachable), V(untouched), V(reverted) - with previous and target release, exit code, duration, the
    evidence and journal paths; and where the rollout halted (V(complete) or V(halted at HOST)).
  - A play may set the variable C(safe_restart_phase) to V(preflight), V(rollout) or V(revert) (the playbook
    C(ansible/playbooks/rollout.yml) does); otherwise a task in check mode is a preflight and any other a rollout.
  - The JSON shape is documented in C(ansible/README.md) and C(ansible/fleet-report.schema.json).
requirements:
  - enable in ansible.cfg (C(callbacks_enabled = safe_restart.fleet.fleet_report))
options:
  report_path:
    description:
      - Where to write the JSON report on the controller. The extra variable C(safe_restart_report) wins over
        this. Without either, the table is printed and nothing is written.
    type: path
    env:
      - name: SAFE_RESTART_REPORT
    ini:
      - section: safe_restart_fleet_report
        key: report_path
'''

import json
import os
import time
from datetime import datetime, timezone

from ansible.plugins.callback import CallbackBase

REPORT_VERSION = 1
STATUSES = ('succeeded', 'already_current', 'rolled_back', 'failed', 'aborted', 'locked', 'unreachable',
            'untouched', 'reverted')
HALTING = ('rolled_back', 'failed', 'aborted', 'locked', 'unreachable')
# safe-restart exit code → status of a host whose run failed
EXIT_STATUS = {1: 'aborted', 2: 'rolled_back', 3: 'failed', 4: 'locked'}
MODULES = ('safe_restart', 'safe_restart.fleet.safe_restart')
# the load-balancer tasks around a host's run (rollout.yml, safe_restart_haproxy)
LB_MODULES = ('haproxy_server', 'safe_restart.fleet.haproxy_server')


def now_iso():
    return datetime.now(timezone.utc).isoformat().replace('+00:00', 'Z')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'safe_restart.fleet.fleet_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.started = time.time()
        self.started_at = now_iso()
        self.hosts = {}         # name → record, in inventory order
        self.order = []
        self.halts = []         # (phase, host) of every halting result, in the order seen
        self.phase = 'rollout'
        self.extra_vars = {}
        self.playbook = None
        self.task_started = {}  # (host, task uuid) → time.time() when the controller started it

    # ---- collecting ------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        play_vars = play.vars or {}
        self.phase = play_vars.get('safe_restart_phase') or 'rollout'
        if self.phase not in ('preflight', 'rollout', 'revert'):
            return
        try:
            vm = play.get_variable_manager()
            self.extra_vars = dict(vm.extra_vars)
            for host in vm._inventory.get_hosts(play.hosts, ignore_limits=True, ignore_restrictions=True):
                self.record(host.get_name())
        except Exception:  # the report must never break a playbook
            pass

    def record(self, name):
        if name not in self.hosts:
            self.order.append(name)
            self.hosts[name] = dict(
                host=name, status='untouched', previous_release=None, target_release=None, exit_code=None,
                duration_ms=None, task_ms=None, run_id=None, description=None, evidence=None, journal=None, message=None,
                reverted_to=None, revert=None,
            )
        return self.hosts[name]

    @staticmethod
    def is_ours(result):
        return result._task.action in MODULES or result._task.action.endswith('.safe_restart')

    def task_phase(self, result):
        if self.phase in ('preflight', 'rollout', 'revert'):
            if self.phase == 'rollout' and result._task.check_mode:
                return 'preflight'
            return self.phase
        return 'preflight' if result._task.check_mode else 'rollout'

    @staticmethod
    def is_lb(result):
        return result._task.action in LB_MODULES

    def v2_runner_on_start(self, host, task):
        self.task_started[(host.get_name(), task._uuid)] = time.time()

    def task_ms(self, result):
        """The task's wall time on the controller, from its start on this host to its result."""
        started = self.task_started.pop((result._host.get_name(), result._task._uuid), None)
        return None if started is None else int((time.time() - started) * 1000)

    def v2_runner_on_ok(self, result):
        if self.is_ours(result):
            self.took(result, failed=False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self.is_ours(result):
            self.took(result, failed=True)
        elif self.is_lb(result):
            self.lb_failed(result)

    def v2_runner_on_unreachable(self, result):
        if self.is_lb(result):
            self.lb_failed(result)
            return
        if not self.is_ours(result):
            return
        rec = self.record(result._host.get_name())
        phase = self.task_phase(result)
        if phase == 'revert':
            rec['revert'] = dict(status='unreachable', message=result._result.get('msg'))
            return
        rec.update(status='unreachable', message=(result._result.get('msg') or '').strip())
        self.halted(rec['host'], phase)

    def lb_failed(self, result):
        """A drain or put-back of the host in the load balancer failed (or the LB was unreachable)."""
        rec = self.record(result._host.get_name())
        phase = self.task_phase(result)
        r = result._result
        msg = 'load balancer%s: %s' % (' unreachable' if r.get('unreachable') else '', (r.get('msg') or 'failed').strip())
        if phase == 'revert':
            rec['revert'] = dict(rec['revert'] or {}, message=msg)
            return
        if phase != 'rollout':
            return
        if rec['status'] == 'untouched':
            # the drain failed: this host's run never started
            rec.update(status='aborted', message=msg)
            self.halted(rec['host'], phase)
        elif rec['status'] in ('succeeded', 'already_current'):
            # healthy on the new release but not back in rotation: a human must look
            rec.update(status='failed', message=msg)
            self.halted(rec['host'], phase)
        else:
            # already halting (the put-back after a rollback failed): keep the status, say it
            rec['message'] = '%s; %s' % (rec['message'], msg) if rec['message'] else msg

    def halted(self, host, phase):
        self.halts.append((phase, host))

    def halted_at(self):
        """The rollout halted in the first phase that had a halting result, at the first such host in
        inventory order (batch-mates of a failing host run in parallel and may fail first)."""
        if not self.halts:
            return None, None
        phase = self.halts[0][0]
        hosts = [h for p, h in self.halts if p == phase]
        return min(hosts, key=lambda h: self.order.index(h) if h in self.order else len(self.order)), phase

    def took(self, result, failed):
        r = result._result
        rec = self.record(result._host.get_name())
        phase = self.task_phase(result)
        rc = r.get('exit_code')
        fields = dict(
            exit_code=rc, previous_release=r.get('previous_release'), target_release=r.get('target_release'),
            duration_ms=r.get('duration_ms'), task_ms=self.task_ms(result), run_id=r.get('run_id'), description=r.get('description'),
            evidence=r.get('evidence'), journal=r.get('journal'), message=r.get('msg'),
        )
        if phase == 'revert':
            rec['revert'] = fields
            if not failed:
                rec.update(status='reverted', reverted_to=r.get('target_release'))
            return
        if phase == 'preflight':
            if failed:
                status = 'locked' if r.get('outcome') == 'locked' or rc == 4 else 'aborted'
                rec.update(fields)
                rec['status'] = status
                self.halted(rec['host'], phase)
            return
        if failed:
            status = EXIT_STATUS.get(rc, 'failed' if rc is not None else 'aborted')
            self.halted(rec['host'], phase)
        else:
            status = 'succeeded' if r.get('changed') else 'already_current'
        rec.update(fields)
        rec['status'] = status

    # ---- writing ---------------------------------------------------------------------------
    def report(self):
        counts = dict((s, 0) for s in STATUSES)
        for rec in self.hosts.values():
            counts[rec['status']] += 1
        host, phase = self.halted_at()
        return dict(
            version=REPORT_VERSION,
            playbook=self.playbook,
            recipe=self.extra_vars.get('safe_restart_recipe'),
            release=self.extra_vars.get('safe_restart_release'),
            started_at=self.started_at,
            finished_at=now_iso(),
            duration_ms=int((time.time() - self.started) * 1000),
            outcome='complete' if host is None else 'halted at %s' % host,
            halted_at=host,
            halted_in=phase,
            counts=counts,
            hosts=[self.hosts[name] for name in self.order],
        )

    @staticmethod
    def table(report):
        head = ('HOST', 'STATUS', 'RELEASE', 'EXIT', 'DURATION', 'EVIDENCE / JOURNAL')
        rows = []
        for h in report['hosts']:
            release = '%s → %s' % (h['previous_release'] or '-', h['target_release'] or '-')
            if h['reverted_to']:
                release += ' → %s' % h['reverted_to']
            rows.append((
                h['host'], h['status'], release if (h['previous_release'] or h['target_release']) else '-',
                '-' if h['exit_code'] is None else str(h['exit_code']),
                '-' if h['duration_ms'] is None else '%.1fs' % (h['duration_ms'] / 1000.0),
                h['evidence'] or h['journal'] or (h['message'] or '-').splitlines()[0][:80] if h['status'] != 'untouched' else '-',
            ))
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines = ['  '.join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [head] + rows]
        counts = ', '.join('%d %s' % (n, s) for s, n in report['counts'].items() if n)
        lines.append('rollout %s: %s' % (report['outcome'], counts))
        return '\n'.join(lines) + '\n'

    def v2_playbook_on_stats(self, stats):
        report = self.report()
        text = self.table(report)
        path = self.extra_vars.get('safe_restart_report') or self.get_option('report_path')
        self._display.banner('SAFE-RESTART FLEET REPORT')
        self._display.display(text)
        if not path:
            return
        path = os.path.abspath(os.path.expanduser(path))
        base = path[:-5] if path.endswith('.json') else path
        try:
            for target, content in ((path, json.dumps(report, indent=2, sort_keys=True) + '\n'), (base + '.txt', text)):
                tmp = target + '.tmp'
                with open(tmp, 'w') as f:
                    f.write(content)
                os.rename(tmp, target)
            self._display.display('fleet report: %s (table: %s)' % (path, base + '.txt'))
        except (IOError, OSError) as e:
            self._display.warning('fleet report: cannot write %s: %s' % (path, e))
