# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kbypass.xdp developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet of Debian 12 hosts on this machine: systemd-nspawn containers booted with
systemd as PID 1, reached over SSH, with nothing but an apt proxy to talk to.

  fleet.py image                      build (or reuse) the cached base image, print its path
  fleet.py create -n 3 --out DIR      boot kbfleet1..N, write DIR/inventory.yml
           [--seccomp-host]           plus kbfleet0, booted with nspawn's default seccomp
                                      filter (bpf() refused), in group kbfleet_seccomp
  fleet.py index                      the package index the controller's pip uses, and an
                                      address of it (the hosts must not reach either)
  fleet.py destroy                    stop and remove everything create made (safe to repeat)
  fleet.py check                      exit 1 when anything of a fleet is left on this machine

Layout on the controller (documented in the README, section "Fleet tests"):
  /var/cache/kbypass-fleet/base-<hash>   debootstrap image, <hash> over suite + package list
  /var/cache/kbypass-fleet/apt-cacher-ng apt proxy cache, kept between runs
  /var/lib/kbypass-fleet/                run state: per host a tmpfs with the overlay's
                                         upper/work and the root mount, pidfiles
Network: bridge kbfleetbr0 198.18.200.1/24 on the controller, host i at 198.18.200.(10+i),
no default route, no DNS: the hosts reach the controller's apt proxy (port 3142) and each
other, nothing else (no PyPI).
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

SUITE = 'bookworm'
APT_SOURCES = '/etc/apt/sources.list.d'
APT_SOURCES_LIST = '/etc/apt/sources.list'
# What a freshly installed cloud VM has; python3-apt because Ansible's apt module needs it.
PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'python3', 'python3-apt',
            'sudo']
# Like minimal cloud and container images: dpkg skips docs, man pages and fsync, man-db
# does not re-index: installing the toolchain on several hosts at once is dpkg-bound.
DPKG_CFG = ('force-unsafe-io\n'
            'path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\n'
            'path-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\n'
            'path-exclude=/usr/share/locale/*\n')
CACHE = '/var/cache/kbypass-fleet'
STATE = '/var/lib/kbypass-fleet'
PREFIX = 'kbfleet'
BRIDGE = 'kbfleetbr0'
NET = '198.18.200'
CONTROLLER_IP = NET + '.1'
PROXY_PORT = 3142
BECOME_USER = 'kbfleet'
BOOT_TIMEOUT = 90
HOST_RAM = '4g'  # upper limit of a host's tmpfs layer, not a reservation


def log(msg):
    print('fleet: %s' % msg, file=sys.stderr, flush=True)


def run(argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, text=True, **kwargs)


def mirror_from_deb822(text, suite):
    """First URI of a deb822 stanza (Types: deb) that carries suite itself."""
    for stanza in re.split(r'\n\s*\n', text):
        fields = {}
        for line in stanza.splitlines():
            match = re.match(r'([A-Za-z-]+):\s*(.*)$', line)
            if match and not line.startswith('#'):
                fields[match.group(1).lower()] = match.group(2).split()
        if (fields.get('enabled', ['yes'])[0] != 'no' and 'deb' in fields.get('types', [])
                and suite in fields.get('suites', []) and fields.get('uris')):
            return fields['uris'][0]
    return None


def mirror_from_list(text, suite):
    """First one-line `deb [options] URI suite components` entry for suite."""
    for line in text.splitlines():
        words = re.sub(r'\[[^]]*\]', ' ', line.split('#', 1)[0]).split()
        if len(words) >= 3 and words[0] == 'deb' and words[2] == suite:
            return words[1]
    return None


def apt_mirror(suite=SUITE, sources_dir=APT_SOURCES, sources_list=APT_SOURCES_LIST):
    """The distribution mirror this controller's apt uses: the hosts get the same one
    (through the apt proxy), so the repository names no mirror of its own."""
    files = []
    if os.path.isdir(sources_dir):
        files = [os.path.join(sources_dir, n) for n in sorted(os.listdir(sources_dir))
                 if n.endswith(('.sources', '.list'))]
    files.append(sources_list)
    for path in files:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        parse = mirror_from_deb822 if path.endswith('.sources') else mirror_from_list
        uri = parse(text, suite)
        if uri:
            return uri.rstrip('/')
    raise SystemExit('fleet: no apt source for %s on this controller (%s, %s); the hosts '
                     'use the same mirror' % (suite, sources_dir, sources_list))


def base_path(mirror):
    digest = hashlib.sha256(json.dumps([SUITE, mirror, PACKAGES, DPKG_CFG]).encode()
                            ).hexdigest()[:12]
    return os.path.join(CACHE, 'base-%s' % digest)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, mode)


# --- base image -------------------------------------------------------------------------
def ensure_image():
    """debootstrap the base once; later runs (and concurrent ones, under a lock) reuse it."""
    mirror = apt_mirror()
    base = base_path(mirror)
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(base, '.kbfleet-complete')):
            return base
        tmp = base + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.monotonic()
        log('building %s with debootstrap (%s, about a minute)' % (base, ' '.join(PACKAGES)))
        run(['debootstrap', '--variant=minbase', '--include=' + ','.join(PACKAGES),
             SUITE, tmp, mirror], stdout=subprocess.DEVNULL)
        # Per-host identity (host keys, machine-id, hostname) is written into each overlay.
        for name in os.listdir(os.path.join(tmp, 'etc/ssh')):
            if name.startswith('ssh_host_'):
                os.unlink(os.path.join(tmp, 'etc/ssh', name))
        write(os.path.join(tmp, 'etc/machine-id'), '')
        run(['systemctl', '--root', tmp, 'enable', 'ssh.service'], stderr=subprocess.DEVNULL)
        run(['chroot', tmp, 'useradd', '--create-home', '--shell', '/bin/bash', BECOME_USER])
        write(os.path.join(tmp, 'etc/sudoers.d/kbfleet'),
              '%s ALL=(ALL) NOPASSWD:ALL\n' % BECOME_USER, 0o440)
        write(os.path.join(tmp, 'etc/dpkg/dpkg.cfg.d/01kbfleet-minimal'), DPKG_CFG)
        run(['chroot', tmp, 'debconf-set-selections'],
            input='man-db man-db/auto-update boolean false\n')
        run(['chroot', tmp, 'apt-get', 'clean'])
        write(os.path.join(tmp, '.kbfleet-complete'), '%s\n' % ' '.join(PACKAGES))
        os.rename(tmp, base)
        log('base image built in %.0f s' % (time.monotonic() - started))
        for name in os.listdir(CACHE):  # images of older settings: the cache keeps one
            if name.startswith('base-') and os.path.join(CACHE, name) != base:
                shutil.rmtree(os.path.join(CACHE, name))
    return base


# --- controller side: bridge and apt proxy --------------------------------------------
def link_exists(name):
    return run(['ip', 'link', 'show', 'dev', name], check=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def ensure_bridge():
    if not link_exists(BRIDGE):
        run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge'])
        run(['ip', 'addr', 'add', CONTROLLER_IP + '/24', 'dev', BRIDGE])
    run(['ip', 'link', 'set', BRIDGE, 'up'])


def spawn(argv, name, env=None):
    """Start a long-running process in its own session; we supervise it by pidfile."""
    with open(os.path.join(STATE, name + '.log'), 'a') as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    write(os.path.join(STATE, name + '.pid'), '%d\n' % proc.pid)
    return proc


def ensure_proxy():
    """apt-cacher-ng on the bridge address only, its cache kept in CACHE between runs."""
    if alive(read_pid('apt-cacher-ng')):
        return
    cache = os.path.join(CACHE, 'apt-cacher-ng')
    os.makedirs(cache, exist_ok=True)
    os.makedirs(os.path.join(STATE, 'acng-log'), exist_ok=True)
    # Our own config without Debian's remaps (they send the mirror to another host name,
    # which this machine may not resolve): the proxy fetches the URL the host asked for.
    conf = os.path.join(STATE, 'acng-conf')
    write(os.path.join(conf, 'acng.conf'), ''.join('%s: %s\n' % item for item in (
        ('CacheDir', cache), ('LogDir', os.path.join(STATE, 'acng-log')),
        ('SupportDir', '/usr/lib/apt-cacher-ng'), ('BindAddress', CONTROLLER_IP),
        ('Port', PROXY_PORT), ('SocketPath', os.path.join(STATE, 'acng.socket')),
        ('PidFile', os.path.join(STATE, 'acng-self.pid')), ('ExThreshold', 4))))
    spawn(['apt-cacher-ng', '-c', conf, 'ForeGround=1', 'BindAddress=' + CONTROLLER_IP],
          'apt-cacher-ng')
    wait_for(lambda: tcp_open(CONTROLLER_IP, PROXY_PORT), 20, 'apt-cacher-ng to listen')


def tcp_open(host, port):
    import socket
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SystemExit('fleet: timed out after %d s waiting for %s' % (timeout, what))


def read_pid(name):
    try:
        with open(os.path.join(STATE, name + '.pid')) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# --- hosts ------------------------------------------------------------------------------
def host_ip(index):
    return '%s.%d' % (NET, 10 + index)


def prepare_root(name, index, base, pubkey):
    """Overlay over the base plus this host's identity, network and apt proxy."""
    hdir = os.path.join(STATE, name)
    root = os.path.join(hdir, 'root')
    # The host's writable layer lives in RAM (about 1.3 GB once the toolchain is in):
    # dpkg does not wait for the disk, and destroy is an unmount, not deleting 50k files.
    os.makedirs(hdir, exist_ok=True)
    run(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=%s' % HOST_RAM, 'kbfleet', hdir])
    for sub in ('upper', 'work', 'root'):
        os.makedirs(os.path.join(hdir, sub), exist_ok=True)
    run(['mount', '-t', 'overlay', 'overlay', '-o',
         'lowerdir=%s,upperdir=%s/upper,workdir=%s/work' % (base, hdir, hdir), root])
    write(os.path.join(root, 'etc/hostname'), name + '\n')
    write(os.path.join(root, 'etc/hosts'), '127.0.0.1 localhost\n127.0.1.1 %s\n' % name)
    write(os.path.join(root, 'etc/machine-id'), uuid.uuid4().hex + '\n', 0o444)
    # One host key type is enough for pinning; RSA keys cost seconds on a busy machine.
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name,
         '-f', os.path.join(root, 'etc/ssh/ssh_host_ed25519_key')])
    write(os.path.join(root, 'etc/apt/apt.conf.d/01kbfleet-proxy'),
          'Acquire::http::Proxy "http://%s:%d";\n' % (CONTROLLER_IP, PROXY_PORT))
    for home, owner in (('root', 'root'), ('home/' + BECOME_USER, BECOME_USER)):
        keys = os.path.join(root, home, '.ssh/authorized_keys')
        write(keys, pubkey, 0o600)
        run(['chroot', root, 'chown', '-R', '%s:%s' % (owner, owner), '/%s/.ssh' % home])
        os.chmod(os.path.dirname(keys), 0o700)
    with open(os.path.join(root, 'etc/ssh/ssh_host_ed25519_key.pub')) as handle:
        return handle.read().split()[:2]


def boot(name, allow_bpf=True):
    root = os.path.join(STATE, name, 'root')
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE='1')
    # No systemd as PID 1 on the controller: --register=no --keep-unit. The default seccomp
    # filter refuses bpf(); the hosts are test benches, so they get every capability.
    allow = ['--system-call-filter=bpf perf_event_open'] if allow_bpf else []
    spawn(['systemd-nspawn', '--boot', '--quiet', '--directory', root, '--machine', name,
           '--register=no', '--keep-unit', '--network-bridge=' + BRIDGE] + allow +
          ['--capability=all', '--resolv-conf=off', '--timezone=off', '--link-journal=no',
           '--console=passive'], name, env=env)


def leader(name):
    """The container's PID 1 as the controller sees it (nspawn's only child)."""
    def child():
        pid = read_pid(name)
        try:
            with open('/proc/%d/task/%d/children' % (pid, pid)) as handle:
                return handle.read().split()
        except (OSError, TypeError):
            return []
    wait_for(child, 20, '%s to start its init' % name)
    return child()[0]


def configure_network(name, index):
    """Address host0 from the controller. systemd-networkd inside would wait for udev
    forever (sysfs is writable, so it believes udev runs), and the image has no iproute2."""
    pid = leader(name)
    wait_for(lambda: run(['nsenter', '-t', pid, '-n', 'ip', 'link', 'show', 'host0'],
                         check=False, capture_output=True).returncode == 0,
             20, '%s to get host0' % name)
    netns = ['nsenter', '-t', pid, '-n', 'ip']
    run(netns + ['addr', 'replace', host_ip(index) + '/24', 'dev', 'host0'])
    run(netns + ['link', 'set', 'host0', 'up'])
    run(netns + ['link', 'set', 'lo', 'up'])


def ssh_argv(out, user, ip, command):
    return ['ssh', '-i', os.path.join(out, 'id_ed25519'), '-o', 'BatchMode=yes',
            '-o', 'UserKnownHostsFile=' + os.path.join(out, 'known_hosts'),
            '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=2',
            '%s@%s' % (user, ip), command]


def wait_ssh(out, name, index):
    def ready():
        if not alive(read_pid(name)):
            raise SystemExit('fleet: %s exited during boot, see %s/%s.log' % (name, STATE, name))
        return run(ssh_argv(out, 'root', host_ip(index), 'true'), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    wait_for(ready, BOOT_TIMEOUT, '%s to accept SSH' % name)
    pid1 = run(ssh_argv(out, 'root', host_ip(index), 'cat /proc/1/comm'),
               capture_output=True).stdout.strip()
    if pid1 != 'systemd':
        raise SystemExit('fleet: %s runs %r as PID 1, not systemd' % (name, pid1))


def create(args):
    if args.hosts < 1 or args.hosts > 200:
        raise SystemExit('fleet: --hosts must be 1..200')
    leftovers = find_leftovers()
    if leftovers:
        raise SystemExit('fleet: a previous fleet is still here (%s); run `%s destroy`'
                         % ('; '.join(leftovers), sys.argv[0]))
    started = time.monotonic()
    base = ensure_image()
    os.makedirs(STATE, exist_ok=True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    key = os.path.join(out, 'id_ed25519')
    if os.path.exists(key):
        os.unlink(key)
        os.unlink(key + '.pub')
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'kbfleet-run', '-f', key])
    with open(key + '.pub') as handle:
        pubkey = handle.read()
    ensure_bridge()
    ensure_proxy()
    # index -> name; host 0 is the one whose seccomp filter refuses bpf().
    first = 0 if args.seccomp_host else 1
    hosts = dict((i, '%s%d' % (PREFIX, i)) for i in range(first, args.hosts + 1))
    known = []
    for index, name in sorted(hosts.items()):
        keytype, keydata = prepare_root(name, index, base, pubkey)
        known.append('%s %s %s\n' % (host_ip(index), keytype, keydata))
        boot(name, allow_bpf=index != 0)
        configure_network(name, index)
    write(os.path.join(out, 'known_hosts'), ''.join(known))
    for index, name in sorted(hosts.items()):
        wait_ssh(out, name, index)
    write(os.path.join(STATE, 'fleet.json'), json.dumps({'hosts': sorted(hosts.values()),
                                                         'out': out}))
    write(os.path.join(out, 'inventory.yml'), inventory(out, hosts))
    log('%d host(s) up in %.0f s, inventory %s/inventory.yml'
        % (len(hosts), time.monotonic() - started, out))


def inventory(out, hosts):
    """Connection facts only; what makes the hosts differ lives in the scenario.
    hosts: {index: name}; index 0 (bpf() refused) goes to its own group."""
    lines = ['# Generated by hack/fleet.py create: the fleet is gone after `fleet.py destroy`.',
             'all:', '  vars:',
             '    ansible_user: root',
             '    ansible_python_interpreter: /usr/bin/python3',
             '    ansible_ssh_private_key_file: %s/id_ed25519' % out,
             '    ansible_ssh_common_args: >-',
             '      -o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes' % out,
             '    kbfleet_become_user: %s' % BECOME_USER,
             '    kbfleet_proxy: http://%s:%d' % (CONTROLLER_IP, PROXY_PORT),
             '  children:']
    for group, members in (('kbypass_hosts', [i for i in sorted(hosts) if i]),
                           ('kbfleet_seccomp', [i for i in hosts if i == 0])):
        if members:
            lines += ['    %s:' % group, '      hosts:']
        for index in members:
            lines += ['        %s:' % hosts[index], '          ansible_host: %s' % host_ip(index)]
    return '\n'.join(lines) + '\n'


def pip_index():
    """The index the controller's pip uses (PIP_INDEX_URL, pip config, pip's default) and
    one IPv4 address of its host, so a test can show the hosts reach neither."""
    import socket
    from urllib.parse import urlsplit
    url = os.environ.get('PIP_INDEX_URL')
    if not url:
        conf = run([sys.executable, '-m', 'pip', 'config', 'get', 'global.index-url'],
                   check=False, capture_output=True)
        url = conf.stdout.strip() if conf.returncode == 0 else None
    if not url:
        from pip._internal.models.index import PyPI  # pip's default, not named here
        url = PyPI.simple_url
    host = urlsplit(url)
    try:
        address = socket.getaddrinfo(host.hostname, host.port or 443, socket.AF_INET,
                                     socket.SOCK_STREAM)[0][4][0]
    except OSError:
        address = None
    print(json.dumps({'url': url, 'address': address, 'port': host.port or
                      (443 if host.scheme == 'https' else 80)}))


# --- destroy ----------------------------------------------------------------------------
def processes_under(path):
    """PIDs whose root directory is inside path (container processes nspawn left)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            root = os.readlink('/proc/%s/root' % entry)
        except OSError:
            continue
        if root == path or root.startswith(path + '/'):
            pids.append(int(entry))
    return pids


def stop(names, timeout=10):
    """Stop processes by pidfile name, all at once. For a container, nspawn asks its
    systemd for an orderly shutdown; one that takes longer is killed (destroy then kills
    what is left inside): these hosts hold nothing worth a slow shutdown."""
    pids = dict((name, read_pid(name)) for name in names)
    started = time.monotonic()
    for pid in pids.values():
        if alive(pid):
            # nspawn turns SIGTERM into an orderly shutdown of the container's systemd.
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.3)
    for name, pid in pids.items():
        if alive(pid):
            log('%s did not stop in %d s, killing it' % (name, timeout))
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.unlink(os.path.join(STATE, name + '.pid'))
        except OSError:
            pass
    if names:
        log('stopped %s in %.1f s' % (', '.join(names), time.monotonic() - started))


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    return pid


def mounts_under(path):
    with open('/proc/self/mounts') as handle:
        points = [line.split()[1] for line in handle]
    return [p for p in points if p == path or p.startswith(path + '/')]


def destroy(_args=None):
    names = sorted(n for n in os.listdir(STATE)
                   if n.startswith(PREFIX) and os.path.isdir(os.path.join(STATE, n))) \
        if os.path.isdir(STATE) else []
    stop(names)
    roots = [os.path.join(STATE, name, 'root') for name in names]
    # Killing a container's PID 1 ends its PID namespace; wait for that before unmounting.
    wait_for(lambda: not [kill(pid) for root in roots for pid in processes_under(root)],
             30, 'the containers\' processes to exit')
    if os.path.isdir(STATE):
        for point in sorted(mounts_under(STATE), key=len, reverse=True):
            if run(['umount', point], check=False, stderr=subprocess.DEVNULL).returncode:
                run(['umount', '-l', point], check=False)
    stop(['apt-cacher-ng'])
    for link in fleet_links():
        if link != BRIDGE:
            # The container's netns outlived its processes (the kernel still holds a
            # reference, seen after a forwarder was killed mid-run): drop our end.
            log('deleting %s, whose container network namespace is still alive' % link)
            run(['ip', 'link', 'del', link], check=False)
    if link_exists(BRIDGE):
        run(['ip', 'link', 'del', BRIDGE])
    if os.path.isdir(STATE) and not mounts_under(STATE):
        shutil.rmtree(STATE)
    leftovers = find_leftovers()
    if leftovers:
        raise SystemExit('fleet: destroy left %s' % '; '.join(leftovers))
    log('destroyed: no container, mount, link, proxy or state left')


def fleet_links():
    """The bridge and the controller's ends of the hosts' veth pairs."""
    links = run(['ip', '-o', 'link', 'show'], capture_output=True).stdout
    names = [line.split(':')[1].strip().split('@')[0] for line in links.splitlines()]
    return [n for n in names if n == BRIDGE or n.startswith(('vb-' + PREFIX, 've-' + PREFIX))]


def find_leftovers():
    found = []
    if os.path.exists(STATE):
        found.append('state directory %s' % STATE)
    if os.path.isdir(STATE) and mounts_under(STATE):
        found.append('mounts %s' % mounts_under(STATE))
    stray = fleet_links()
    if stray:
        found.append('links %s' % stray)
    procs = run(['ps', '-eo', 'pid=,args='], capture_output=True).stdout.splitlines()
    stray = [p.strip() for p in procs
             if ('systemd-nspawn' in p and '--machine ' + PREFIX in p)
             or ('apt-cacher-ng' in p and 'BindAddress=' + CONTROLLER_IP in p)]
    if stray:
        found.append('processes %s' % stray)
    if os.path.isdir('/var/lib/machines'):
        stray = [n for n in os.listdir('/var/lib/machines') if n.startswith(PREFIX)]
        if stray:
            found.append('/var/lib/machines/%s' % stray)
    return found


def check(_args=None):
    leftovers = find_leftovers()
    if leftovers:
        print('\n'.join(leftovers))
        raise SystemExit(1)
    print('nothing of a fleet is left on this machine')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('image').set_defaults(func=lambda _a: print(ensure_image()))
    p_create = sub.add_parser('create')
    p_create.add_argument('-n', '--hosts', type=int, default=3)
    p_create.add_argument('--out', required=True, help='where the key and inventory go')
    p_create.add_argument('--seccomp-host', action='store_true',
                          help="also boot kbfleet0 under nspawn's default seccomp filter")
    p_create.set_defaults(func=create)
    sub.add_parser('index').set_defaults(func=lambda _a: pip_index())
    sub.add_parser('destroy').set_defaults(func=destroy)
    sub.add_parser('check').set_defaults(func=check)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('fleet: needs root (debootstrap, mount, systemd-nspawn, ip)')
    args.func(args)


if __name__ == '__main__':
    main()
