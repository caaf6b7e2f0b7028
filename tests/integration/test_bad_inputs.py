"""The bad-input table: every case in tests/integration/bad_inputs/<module>.yml must fail
with a message a person can act on, and change nothing on the machine.

A case file is a YAML list::

    - id: short-kebab-id
      args: {...module args...}
      msg: "substring expected in the error message"   # optional
      check_mode: true                                  # optional: run with --check

All cases of a module run as the tasks of one playbook (``ignore_errors``), the modules'
playbooks in parallel, so the table costs a few Ansible start-ups, not one per case.
A snapshot of what the modules could touch is taken before and after the whole batch.
The machine is shared by other users while this runs, so the snapshot covers only names
with the cases' prefixes (``kbr``, ``kbo``), which every case uses, plus the sysctls and XDP
programs the modules can change globally.

docs/bad-inputs.md is generated from the case files:
``python tests/integration/test_bad_inputs.py --write`` (test_doc_is_current checks it).
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES_DIR = os.path.join(HERE, 'bad_inputs')
DOC = os.path.join(ROOT, 'docs', 'bad-inputs.md')
PREFIX = 'kbr'
# Every case names what it would touch with one of these prefixes (kbr: this suite's
# helper, kbo: the cases of xdp_attach, host_tune, nic_tune and traffic_probe).
PREFIXES = (PREFIX, 'kbo')
MIN_CASES = 15

# Python's own renderings of exceptions: a message with one of these was not written for
# a person.
EXCEPTION_TEXT = [
    'Traceback', '[Errno', 'object has no attribute', 'NoneType', 'KeyError',
    'IndexError', 'TypeError', 'ValueError:', 'unhashable type', 'not subscriptable',
    'object is not iterable', 'invalid literal for int()',
]
EXCEPTION_RE = re.compile(r"\(\d+, '[^']*'\)")  # (22, 'Invalid argument')

SYSCTLS = ('net/ipv4/ip_forward', 'net/core/busy_poll', 'net/core/busy_read',
           'net/core/netdev_budget', 'net/core/rmem_max', 'net/core/wmem_max',
           'net/core/bpf_jit_enable')


def load_cases():
    """{module: [case, ...]} from the case files, sorted by module name."""
    out = {}
    for path in sorted(glob.glob(os.path.join(CASES_DIR, '*.yml'))):
        with open(path) as f:
            out[os.path.splitext(os.path.basename(path))[0]] = yaml.safe_load(f) or []
    return out


# ------------------------------------------------------------------ the generated doc
def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', '\\n')


def _args_text(args):
    text = json.dumps(args, ensure_ascii=True, sort_keys=True)
    return '`%s`' % text.replace('`', "'")


def render_doc(cases):
    lines = ['# Bad inputs each module refuses',
             '',
             '<!-- Generated from tests/integration/bad_inputs/*.yml by',
             '     `python tests/integration/test_bad_inputs.py --write`: do not edit. -->',
             '',
             'Every row is a test (`tests/integration/test_bad_inputs.py`): the module fails with '
             'a message that contains the text shown (when one is given) and no Python '
             'exception text, and nothing changes on the machine (namespaces, links, attached '
             'XDP programs, pins, forwarder processes, sysctls, runtime and report files).',
             '']
    for module, items in cases.items():
        lines += ['## %s (%d cases)' % (module, len(items)), '',
                  '| case | arguments | message contains |', '|---|---|---|']
        for c in items:
            lines.append('| %s%s | %s | %s |' % (
                _cell(c['id']), ' (check mode)' if c.get('check_mode') else '',
                _cell(_args_text(c.get('args') or {})), _cell(c.get('msg') or '—')))
        lines.append('')
    return '\n'.join(lines)


def test_case_files_are_well_formed():
    cases = load_cases()
    assert cases, 'no case files in %s' % CASES_DIR
    for module, items in cases.items():
        ids = [c.get('id') for c in items]
        assert len(ids) == len(set(ids)), '%s: duplicate ids' % module
        for c in items:
            assert set(c) <= {'id', 'args', 'msg', 'check_mode'}, c
            assert re.match(r'^[a-z0-9]+(-[a-z0-9]+)*$', c['id']), c['id']
            assert isinstance(c.get('args'), dict), c


@pytest.mark.parametrize('module', ['afxdp_forwarder', 'netns_veth', 'verify_report',
                                    'xdp_facts', 'nic_facts', 'kernel_preflight'])
def test_enough_cases(module):
    assert len(load_cases().get(module, [])) >= MIN_CASES


def test_doc_is_current():
    with open(DOC) as f:
        assert f.read() == render_doc(load_cases()), \
            'docs/bad-inputs.md is stale: python tests/integration/test_bad_inputs.py --write'


# ------------------------------------------------------------------ the machine's state
def _run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    return p.stdout


def _ours(text):
    return any(p in text for p in PREFIXES)


def snapshot():
    """What a module could have changed, limited to this suite's names (see above)."""
    snap = {}
    nss = sorted(n for n in (os.listdir('/run/netns') if os.path.isdir('/run/netns') else [])
                 if _ours(n))
    snap['netns'] = nss
    for ns in [None] + nss:
        cmd = ['ip', '-d', '-o', 'link', 'show'] if ns is None else \
            ['ip', '-n', ns, '-d', '-o', 'link', 'show']
        links = []
        for line in _run(cmd).splitlines():
            name = line.split(':')[1].strip().split('@')[0] if ':' in line else ''
            if ns is not None or _ours(name):
                # name, flags, mtu and the attached XDP program (prog/xdp id N)
                links.append(re.sub(r'\s+', ' ', re.sub(r'link-netns\S* \S+|altname \S+', '',
                                                        line)).split(' link/')[0]
                             + ' ' + ' '.join(re.findall(r'prog/xdp id \d+', line)))
        snap['links:%s' % (ns or 'root')] = sorted(links)
        cmd = ['ip', 'addr', 'show'] if ns is None else ['ip', '-n', ns, 'addr', 'show']
        if ns is not None:
            snap['addr:%s' % ns] = sorted(re.findall(r'inet6? \S+', _run(cmd)))
    snap['xdp_root'] = sorted(line for line in _run(['ip', '-o', 'link', 'show']).splitlines()
                              if 'xdp' in line and _ours(line))
    tree = []
    for base in ('/sys/fs/bpf/kbypass', '/run/kbypass', '/tmp'):
        for dirpath, dirnames, filenames in os.walk(base) if os.path.isdir(base) else []:
            if dirpath == '/tmp':  # only what cases name there, not other users' files
                dirnames[:] = [d for d in dirnames if d.startswith(PREFIXES)]
                filenames = [f for f in filenames if f.startswith(PREFIXES)]
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if _ours(path):
                    tree.append(path)
    snap['files'] = sorted(tree)
    procs = []
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    argv = f.read().decode('utf-8', 'replace')
            except OSError:
                continue
            if 'kbypass-fwd' in argv and _ours(argv):
                procs.append(argv.replace('\0', ' '))
    snap['forwarders'] = sorted(procs)
    sysctls = {}
    for key in SYSCTLS:
        try:
            with open('/proc/sys/' + key) as f:
                sysctls[key] = f.read().strip()
        except OSError:
            pass
    snap['sysctls'] = sysctls
    return snap


# ------------------------------------------------------------------ running the table
def _playbook(module, items):
    tasks = []
    for c in items:
        task = {'name': c['id'], 'kbypass.xdp.%s' % module: c.get('args') or {},
                'ignore_errors': True}
        if c.get('check_mode'):
            task['check_mode'] = True
        tasks.append(task)
    return [{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]


def run_all(tmpdir):
    """Run every module's cases (in parallel); {module: {case id: result}}."""
    sys.path.insert(0, HERE)
    from conftest import BIN, _env  # pylint: disable=import-outside-toplevel
    procs = {}
    for module, items in load_cases().items():
        path = os.path.join(tmpdir, '%s.yml' % module)
        with open(path, 'w') as f:
            yaml.safe_dump(_playbook(module, items), f, allow_unicode=True)
        cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
               '-e', 'ansible_python_interpreter=%s' % sys.executable, path]
        procs[module] = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    results = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        try:
            tasks = json.loads(out)['plays'][0]['tasks']
        except (ValueError, KeyError, IndexError) as exc:
            raise AssertionError('%s: %s\n%s' % (module, out[-2000:], err[-2000:])) from exc
        results[module] = dict((t['task']['name'], t['hosts']['localhost']) for t in tasks)
    return results


@pytest.fixture(scope='module')
def table(tmp_path_factory):
    before = snapshot()
    results = run_all(str(tmp_path_factory.mktemp('kbr_bad')))
    after = snapshot()
    return {'results': results, 'before': before, 'after': after}


def _all_cases():
    return [(module, c) for module, items in load_cases().items() for c in items]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='modules need root')


@needs_root
@pytest.mark.parametrize('module,case', _all_cases(),
                         ids=['%s:%s' % (m, c['id']) for m, c in _all_cases()])
def test_bad_input_fails_clearly(table, module, case):
    r = table['results'][module][case['id']]
    assert r.get('failed') is True, r
    msg = str(r.get('msg') or '')
    assert msg, r
    for text in EXCEPTION_TEXT:
        assert text not in msg, 'Python exception text %r in: %s' % (text, msg)
    assert not EXCEPTION_RE.search(msg), msg
    if case.get('msg'):
        assert case['msg'] in msg, msg
    assert not r.get('changed'), r


@needs_root
def test_snapshot_sees_what_a_module_could_leave():
    """The snapshot must be able to fail: a namespace, a link and a state file of ours."""
    before = snapshot()
    subprocess.run(['ip', 'netns', 'add', 'kbr-bad-probe'], check=True)
    try:
        subprocess.run(['ip', '-n', 'kbr-bad-probe', 'link', 'add', 'kbr-bad-l0', 'type',
                        'veth', 'peer', 'name', 'kbr-bad-l1'], check=True)
        os.makedirs('/run/kbypass/kbr-bad-probe', exist_ok=True)
        after = snapshot()
    finally:
        subprocess.run(['ip', 'netns', 'del', 'kbr-bad-probe'], check=False)
        os.rmdir('/run/kbypass/kbr-bad-probe')
    assert after['netns'] == before['netns'] + ['kbr-bad-probe'] or \
        'kbr-bad-probe' in after['netns']
    assert any('kbr-bad-l0' in line for line in after['links:kbr-bad-probe'])
    assert '/run/kbypass/kbr-bad-probe' in after['files']
    assert snapshot() == before


@needs_root
def test_nothing_changed_on_the_machine(table):
    before, after = table['before'], table['after']
    diff = dict((k, (before.get(k), after.get(k))) for k in set(before) | set(after)
                if before.get(k) != after.get(k))
    assert not diff, json.dumps(diff, indent=1)


if __name__ == '__main__':
    if sys.argv[1:] == ['--write']:
        with open(DOC, 'w') as f:
            f.write(render_doc(load_cases()))
    else:
        sys.stdout.write(render_doc(load_cases()))
