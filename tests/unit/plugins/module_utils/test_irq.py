"""IRQ discovery and affinity logic on recorded layouts.

Mocking is justified here: no mlx5/ice/i40e NIC exists on the machines that run the tests,
so /proc/interrupts and sysfs msi_irqs are recorded fixtures (virtio_net is recorded from
our own VM). Affinity file I/O runs against a real temporary /proc-like tree.
"""
import json
import os

import pytest

from ansible_collections.kbypass.xdp.plugins.module_utils import _irq

FIX = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'irq')


def _load(driver):
    with open(os.path.join(FIX, driver + '.interrupts')) as f:
        ints = _irq.parse_proc_interrupts(f.read())
    with open(os.path.join(FIX, driver + '.json')) as f:
        meta = json.load(f)
    return ints, meta


@pytest.mark.parametrize('driver', ['virtio_net', 'mlx5', 'ice', 'i40e'])
def test_discover_irqs_per_driver(driver):
    ints, meta = _load(driver)
    found = _irq.discover_irqs(ints, meta['ifname'], msi_irqs=meta['msi_irqs'],
                               bus_info=meta['bus_info'], device_name=meta['device_name'])
    assert [[i['irq'], i['kind'], i['queue']] for i in found] == meta['expected']


def test_name_matching_does_not_confuse_eth1_with_eth10():
    ints, meta = _load('i40e')
    found = _irq.discover_irqs(ints, 'eth1', bus_info='0000:02:00.0')
    assert 64 not in [i['irq'] for i in found]
    found10 = _irq.discover_irqs(ints, 'eth10', bus_info='0000:02:00.1')
    assert [i['irq'] for i in found10] == [63, 64]


def test_virtio_without_msi_uses_device_name():
    ints, dummy = _load('virtio_net')
    found = _irq.discover_irqs(ints, 'eth0', msi_irqs=None, device_name='virtio2')
    assert [i['name'] for i in found] == ['virtio2-config', 'virtio2-input.0', 'virtio2-output.0']


def test_veth_has_no_irqs():
    ints, dummy = _load('virtio_net')
    assert _irq.discover_irqs(ints, 'veth0', msi_irqs=[], bus_info=None, device_name=None) == []


def test_parse_proc_interrupts_fields():
    ints, dummy = _load('mlx5')
    first = ints[1]
    assert first['irq'] == 99 and first['counts'] == [10321, 0, 0, 0]
    assert first['name'] == 'mlx5_comp0@pci:0000:3b:00.0'
    assert first['chip'].startswith('IR-PCI-MSIX')
    ints2, dummy = _load('virtio_net')
    assert all(isinstance(i['irq'], int) for i in ints2)  # NMI/LOC rows dropped
    assert len(ints2) == 19


@pytest.mark.parametrize('text,cpus', [
    ('0-3,8,10-11', [0, 1, 2, 3, 8, 10, 11]), ('5', [5]), ('', []), ([3, 1, 1], [1, 3]),
    (2, [2]), ('1,0', [0, 1])])
def test_cpulist_roundtrip(text, cpus):
    assert _irq.parse_cpulist(text) == cpus
    assert _irq.parse_cpulist(_irq.format_cpulist(cpus)) == cpus


@pytest.mark.parametrize('bad', ['a', '3-1', '1-', '0,,x'])
def test_cpulist_rejects_garbage(bad):
    with pytest.raises(ValueError):
        _irq.parse_cpulist(bad)


def test_format_cpulist_compresses():
    assert _irq.format_cpulist([0, 1, 2, 5, 7, 8]) == '0-2,5,7-8'


def test_plan_affinity_spread_and_all():
    ints, meta = _load('mlx5')
    irqs = _irq.discover_irqs(ints, meta['ifname'], meta['msi_irqs'], meta['bus_info'])
    desired, change = _irq.plan_affinity(irqs, [2, 3], 'spread',
                                         current={99: [2], 100: [0, 1, 2, 3]})
    assert desired == {99: [2], 100: [3], 101: [2], 102: [3]}
    assert 98 not in desired  # the async vector is left alone
    assert change == [100, 101, 102]
    desired, change = _irq.plan_affinity(irqs, [2, 3], 'all')
    assert set(desired) == {99, 100, 101, 102} and desired[99] == [2, 3]
    with pytest.raises(ValueError):
        _irq.plan_affinity(irqs, [1], 'bogus')


def test_plan_affinity_keeps_rx_tx_of_a_queue_together():
    ints, meta = _load('virtio_net')
    irqs = _irq.discover_irqs(ints, 'eth0', meta['msi_irqs'], device_name='virtio2')
    desired, dummy = _irq.plan_affinity(irqs, [0, 1], 'spread')
    assert desired == {38: [0], 39: [0]}


def test_affinity_applied():
    assert _irq.affinity_applied([2, 3], [2])
    assert not _irq.affinity_applied([2, 3], [0])
    assert not _irq.affinity_applied([2], [])


def test_affinity_files(tmp_path):
    d = tmp_path / 'irq' / '141'
    d.mkdir(parents=True)
    (d / 'smp_affinity_list').write_text('0-3\n')
    (d / 'effective_affinity_list').write_text('1\n')
    got = _irq.read_affinity(141, proc_root=str(tmp_path))
    assert got == {'smp_affinity_list': [0, 1, 2, 3], 'effective_affinity_list': [1]}
    assert _irq.write_affinity(141, [2, 3], proc_root=str(tmp_path)) is None
    assert (d / 'smp_affinity_list').read_text() == '2-3'
    assert _irq.read_affinity(999, proc_root=str(tmp_path)) == {
        'smp_affinity_list': None, 'effective_affinity_list': None}
    err = _irq.write_affinity(999, [1], proc_root=str(tmp_path))
    assert err and 'FileNotFoundError' in err
