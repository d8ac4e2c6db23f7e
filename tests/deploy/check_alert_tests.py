#!/usr/bin/python3
"""check_alert_tests.py -- every alert of a rules file has a promtool
test case where it fires and one where it stays quiet.

    tests/deploy/check_alert_tests.py RULES.yml RULES.test.yml

`promtool test rules` only runs the cases that exist: an alert added
without a case, or with only a quiet one, would pass it. Exit 0, or 1
with one line per alert that lacks a case.
"""
import sys

import yaml


def main():
    """Compares the alerts of the rules file with the test cases."""
    if len(sys.argv) != 3:
        print("usage: check_alert_tests.py RULES.yml RULES.test.yml", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        tests = yaml.safe_load(f)
    alerts = [r["alert"] for g in rules.get("groups", []) for r in g.get("rules", [])
              if "alert" in r]
    fires, quiet = set(), set()
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []) or []:
            (fires if a.get("exp_alerts") else quiet).add(a.get("alertname"))
    bad = 0
    for a in alerts:
        if a not in fires:
            print("check_alert_tests: %s has no case where it fires" % a, file=sys.stderr)
            bad = 1
        if a not in quiet:
            print("check_alert_tests: %s has no case where it stays quiet" % a, file=sys.stderr)
            bad = 1
    for a in (fires | quiet) - set(alerts):
        print("check_alert_tests: the tests name %s, which is no alert" % a, file=sys.stderr)
        bad = 1
    if not alerts:
        print("check_alert_tests: no alert in %s" % sys.argv[1], file=sys.stderr)
        bad = 1
    if not bad:
        print("check_alert_tests: ok: %d alerts, each firing and quiet in a case" % len(alerts))
    return bad


if __name__ == "__main__":
    sys.exit(main())
