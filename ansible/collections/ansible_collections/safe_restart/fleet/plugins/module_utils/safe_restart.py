# -*- coding: utf-8 -*-
# Copyright: safe-restart contributors
# MIT License
"""Shared code of the safe_restart modules: build argv lists for the safe-restart CLI, run it with
module.run_command, and parse its JSON / NDJSON output (README.md "Commands", docs/events.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

# exit codes of safe-restart (README.md "Exit codes")
EXIT_SUCCEEDED = 0
EXIT_FAILED_NOTHING_TOUCHED = 1
EXIT_ROLLED_BACK = 2
EXIT_NEEDS_HUMAN = 3
EXIT_LOCKED = 4
EXIT_USAGE = 64
EXIT_INVALID_RECIPE = 65
EXIT_INTERNAL = 70

# the fields of a run's `summary` event returned by the modules, camelCase → snake_case
SUMMARY_FIELDS = (
    'outcome', 'exitCode', 'previousRelease', 'targetRelease', 'description', 'reason', 'action',
    'runId', 'startedAt', 'durationMs', 'journal', 'evidence', 'timeline', 'leftState', 'warnings',
)


def snake_case(name):
    """runId → run_id, exitCode → exit_code; SAFE_RESTART_RELEASE and snake_case stay as they are."""
    if not re.search(r'[a-z]', name):
        return name
    return re.sub(r'(?<=[a-z0-9])(?=[A-Z])', '_', name).lower()


def snake_keys(value):
    """Recursively convert the keys of dicts (inside lists too) to snake_case."""
    if isinstance(value, dict):
        return dict((snake_case(k), snake_keys(v)) for k, v in value.items())
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def common_argument_spec():
    """Options every safe_restart module takes."""
    return dict(
        binary=dict(type='str', default='safe-restart'),
        state_dir=dict(type='path'),
    )


def locked_message(recipe, detail):
    return (
        '%s – another safe-restart run holds the lock of this recipe (wait for it), or an earlier run died '
        'mid-restart and `safe-restart recover %s` must run first (state=recovered does that)' % (detail, recipe)
    )


class SafeRestartError(Exception):
    def __init__(self, msg, **result):
        super(SafeRestartError, self).__init__(msg)
        self.msg = msg
        self.result = result


class SafeRestartCLI(object):
    """The safe-restart command line, run on the managed host through module.run_command."""

    def __init__(self, module):
        self.module = module
        binary = module.params['binary']
        if os.path.sep in binary:
            if not os.access(binary, os.X_OK):
                module.fail_json(msg='binary %s is not an executable file' % binary)
            self.binary = binary
        else:
            self.binary = module.get_bin_path(binary, required=True)
        self.state_dir = module.params.get('state_dir')
        self.commands = []

    # ---- argv ------------------------------------------------------------------------------
    def argv(self, command, *args, **kw):
        argv = [self.binary, command] + [a for a in args if a is not None]
        for key, value in sorted((kw.get('vars') or {}).items()):
            argv.extend(['--var', '%s=%s' % (key, value)])
        if kw.get('release'):
            argv.extend(['--release', kw['release']])
        if kw.get('reason'):
            argv.extend(['--reason', kw['reason']])
        if kw.get('force'):
            argv.append('--force')
        if self.state_dir:
            argv.extend(['--state-dir', self.state_dir])
        argv.append('--json')
        return argv

    def run(self, argv):
        rc, out, err = self.module.run_command(argv, environ_update={'NO_COLOR': '1'})
        self.commands.append({'argv': argv, 'rc': rc})
        return rc, out, err

    # ---- parsing ---------------------------------------------------------------------------
    def _fail_unexpected(self, what, rc, out, err):
        if rc == EXIT_INVALID_RECIPE:
            why = 'invalid recipe'
        elif rc == EXIT_USAGE:
            why = 'usage error'
        elif rc == EXIT_INTERNAL:
            why = 'internal error in safe-restart'
        else:
            why = 'exit %s' % rc
        text = (err or '').strip() or (out or '').strip()
        raise SafeRestartError('safe-restart %s failed (%s): %s' % (what, why, text[-2000:]),
                               rc=rc, stdout=out, stderr=err, exit_code=rc)

    def json_doc(self, what, argv, ok_codes=(0,)):
        """A command that prints one JSON document (plan, preflight, status, history)."""
        rc, out, err = self.run(argv)
        if rc not in ok_codes:
            self._fail_unexpected(what, rc, out, err)
        try:
            return rc, json.loads(out)
        except ValueError:
            self._fail_unexpected(what + ' (output is not JSON)', rc, out, err)

    @staticmethod
    def last_event(out):
        """The last JSON line of NDJSON output (the summary, or nothing_to_recover)."""
        for line in reversed((out or '').splitlines()):
            line = line.strip()
            if line.startswith('{'):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        return None

    # ---- commands --------------------------------------------------------------------------
    def plan(self, recipe, release=None, variables=None):
        return self.json_doc('plan', self.argv('plan', recipe, release=release, vars=variables))[1]

    def recipe_name(self, recipe, variables=None):
        return self.plan(recipe, variables=variables)['recipe']

    def preflight(self, recipe, release=None, variables=None):
        return self.json_doc('preflight', self.argv('preflight', recipe, release=release, vars=variables),
                             ok_codes=(EXIT_SUCCEEDED, EXIT_FAILED_NOTHING_TOUCHED, EXIT_LOCKED))

    def status(self, name=None):
        doc = self.json_doc('status', self.argv('status', name))[1]
        return doc.get('recipes', [])

    def history(self, name=None, limit=None):
        args = [name] if name else []
        if limit is not None:
            args += ['--limit', str(limit)]
        return self.json_doc('history', self.argv('history', *args))[1].get('runs', [])

    def restart(self, command, recipe, **kw):
        """run / recover: NDJSON, the last line is the summary (or nothing_to_recover)."""
        argv = self.argv(command, recipe, **kw)
        rc, out, err = self.run(argv)
        event = self.last_event(out)
        if event is None and rc == EXIT_LOCKED:
            # refused before the run started: no journal, no summary, the reason on stderr
            raise SafeRestartError(locked_message(recipe, strip_prefix(err)), exit_code=rc, outcome='locked',
                                   stderr=err)
        if event is None:
            self._fail_unexpected(command, rc, out, err)
        return rc, event, err


def strip_prefix(text):
    text = (text or '').strip()
    return text[len('safe-restart: '):] if text.startswith('safe-restart: ') else text


def summary_result(summary):
    """The summary event's fields the modules return, snake_case."""
    result = {}
    for field in SUMMARY_FIELDS:
        if field in summary:
            result[snake_case(field)] = snake_keys(summary[field])
    for field in ('evidence', 'left_state'):
        result.setdefault(field, None)
    return result


def recipe_status(statuses, name):
    for entry in statuses:
        if entry.get('recipe') == name:
            return entry
    return None
