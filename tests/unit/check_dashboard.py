#!/usr/bin/env python3
"""Checks config/grafana-dashboard.json against what egressd exports.

Every panel query must be valid PromQL (promtool checks it as a recording
rule, with Grafana's variables filled in) and may name only metrics that
egressd's metrics module or process collector declares.
Usage: check_dashboard.py DASHBOARD METRICS_CPP[,MORE_CPP...] PROCESS_CPP PROMTOOL
"""
import json
import re
import subprocess
import sys
import tempfile

dashboard, metrics_cpp, process_cpp, promtool = sys.argv[1:5]
declared = set()
for source in metrics_cpp.split(","):
    declared |= set(re.findall(r'(?:Name|histograms_->add|\.add)\(\s*"([a-z_]+)"', open(source).read()))
declared |= set(re.findall(r'gauge\("([a-z_]+)"', open(process_cpp).read()))
declared.add("up")
exported = set(declared)
for name in declared:  # histograms expose these series
    exported |= {name + "_bucket", name + "_count", name + "_sum"}

exprs = []
for panel in json.load(open(dashboard))["panels"]:
    for t in panel.get("targets", []):
        exprs.append((panel["title"], t["expr"]))
if not exprs:
    sys.exit("no queries found in " + dashboard)

problems = []
rules = {"groups": [{"name": "dashboard", "rules": []}]}
for i, (title, expr) in enumerate(exprs):
    filled = expr.replace("$__rate_interval", "5m").replace("$pool", ".*")
    rules["groups"][0]["rules"].append({"record": "dashboard:query_%d" % i, "expr": filled})
    for name in re.findall(r"\b((?:egress|process)_[a-z_]+)\b", filled):
        if name not in exported:
            problems.append("%s: %s is not a metric egressd exports" % (title, name))

with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
    json.dump(rules, f)  # JSON is valid YAML
    f.flush()
    r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append("promtool rejects a query:\n" + r.stdout + r.stderr)

for p in problems:
    print(p)
print("%d queries checked, %d problem(s)" % (len(exprs), len(problems)))
sys.exit(1 if problems else 0)
