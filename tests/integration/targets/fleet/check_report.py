# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Checks the report that playbooks/report.yml wrote against fusion_facts read before and after it.

Usage: check_report.py REPORT_DIR BEFORE.json AFTER.json
KSM's counters move while guests run, so a figure must equal the facts when they did not move between the two
snapshots, and lie near them otherwise.
"""
import json
import os
import re
import sys

PATTERNS = {'fleet-a': 'pffleet-a-', 'fleet-b': 'pffleet-b-', 'fleet-c': 'pffleet-c-', 'fleet-d': ''}


def between(value, a, b, what):
    """Equal when the facts did not move; else within them, widened by how far they moved (other hosts' reads
    happen at other moments, and KSM's counters may go down as well as up)."""
    if a == b:
        assert value == a, '%s: %r, the facts say %r' % (what, value, a)
        return
    slack = max(abs(a - b), 0.02 * max(abs(a), abs(b)))
    assert min(a, b) - slack <= value <= max(a, b) + slack, '%s: %r far from the facts %r and %r' % (what, value, a, b)


def main():
    report_dir, before_path, after_path = sys.argv[1:4]
    with open(os.path.join(report_dir, 'report.json')) as f:
        report = json.load(f)
    with open(before_path) as f:
        before = json.load(f)
    with open(after_path) as f:
        after = json.load(f)

    hosts = {h['host']: h for h in report['hosts']}
    assert sorted(hosts) == sorted(list(PATTERNS) + ['fleet-broken']), sorted(hosts)
    assert hosts['fleet-broken']['status'] == 'failed', hosts['fleet-broken']
    assert 'Cannot connect to libvirt' in hosts['fleet-broken']['error'], hosts['fleet-broken']
    totals = report['totals']
    assert totals['hosts'] == 5 and totals['hosts_ok'] == 4 and totals['hosts_failed'] == ['fleet-broken'], totals

    saved_total = 0
    for name, prefix in PATTERNS.items():
        h = hosts[name]
        assert h['status'] == 'ok', h
        fb, fa = before[name], after[name]
        for key in ('saved_bytes', 'shared_bytes'):
            between(h[key], fb['host'][key], fa['host'][key], '%s %s' % (name, key))
        assert h['ksm_present'] == fa['host']['ksm_present'], name
        saved_total += h['saved_bytes']
        want = sorted(vm for vm in fa['vms'] if vm.startswith(prefix))
        got = [vm['name'] for vm in h['vms']]
        assert sorted(got) == want, '%s: VMs %r, facts %r' % (name, got, want)
        assert h['vm_count'] == len(want), name
        assert h['vms_enabled'] == sum(1 for vm in want if fa['vms'][vm]['page_fusion'] == 'enabled'), name
        field = h['vm_savings_field']
        measured = []
        for vm in h['vms']:
            facts = fa['vms'][vm['name']]
            # The test driver (fleet-d) makes up new UUIDs on every connection.
            for key in ('page_fusion', 'power_state', 'page_fusion_live') + (('uuid',) if prefix else ()):
                assert vm['facts'][key] == facts[key], '%s %s %s: %r != %r' % (name, vm['name'], key, vm['facts'][key], facts[key])
            if vm['facts'][field] is not None:
                measured.append(vm['facts'][field])
                if fb['vms'][vm['name']][field] is not None and facts[field] is not None:
                    between(vm['facts'][field], fb['vms'][vm['name']][field], facts[field], '%s %s' % (name, vm['name']))
        assert measured == sorted(measured, reverse=True), '%s: not sorted by savings: %r' % (name, measured)
        assert got[:len(measured)] == [vm['name'] for vm in h['vms'] if vm['facts'][field] is not None], name
        assert h['vms_savings_bytes'] == sum(measured), name
    assert totals['saved_bytes'] == saved_total, totals

    with open(os.path.join(report_dir, 'report.html')) as f:
        html = f.read()
    assert '<svg' in html, 'no <svg> in report.html'
    bars = re.findall(r'<rect class="bar" data-host="([^"]*)"', html)
    assert sorted(bars) == sorted(PATTERNS), 'bars %r' % bars
    assert '<script' not in html.lower(), 'report.html has a script'
    assert not re.search(r'(src|href)\s*=', html), 'report.html loads something'
    assert re.findall(r'https?://', html) == ['http://'], 'report.html names a URL besides the SVG namespace'
    with open(os.path.join(report_dir, 'report.md')) as f:
        md = f.read()
    for name in hosts:
        assert '| %s |' % name in md, name
    check_units(report, html, md)
    print('check_report: report.json, report.md and report.html match the facts (%d bars)' % len(bars))


def size_text(size):
    """A size as the report must write it: binary units, named (the binary_size filter's output)."""
    for exponent, unit in reversed(list(enumerate(('B', 'KiB', 'MiB', 'GiB', 'TiB')))):
        if exponent == 0 or size >= 1024 ** exponent:
            return '%d B' % size if exponent == 0 else '%.1f %s' % (size / 1024.0 ** exponent, unit)


def check_units(report, html, md):
    """One vocabulary of units: every size in KiB/MiB/GiB (never the decimal-looking "MB"), CPU in CPU seconds."""
    for text, what in ((html, 'report.html'), (md, 'report.md')):
        decimal = re.findall(r'\d (?:[kKMGT]B)\b', text)
        assert not decimal, '%s labels sizes with decimal units: %r' % (what, decimal)
        assert size_text(report['totals']['saved_bytes']) in text, '%s: total %s missing' % (what, size_text(report['totals']['saved_bytes']))
        for h in report['hosts']:
            if h['status'] != 'ok':
                continue
            assert size_text(h['saved_bytes']) in text, '%s: %s saved %s missing' % (what, h['host'], size_text(h['saved_bytes']))
            if h['ksmd_cpu_seconds'] is not None:
                assert '%s CPU s' % h['ksmd_cpu_seconds'] in text, '%s: %s ksmd CPU without its unit' % (what, h['host'])
        assert 'ksmd CPU since boot' in text, '%s: the ksmd CPU column does not say what it counts' % what


if __name__ == '__main__':
    main()
