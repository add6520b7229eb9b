"""Turns bench/results/*.jsonl into the markdown tables of BENCHMARKS.md (ratios vs c360)."""
import json
import os
import sys

for path in sys.argv[1:]:
    name = os.path.basename(path).split(".")[0]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    last = {}
    for r in rows:  # the last (warm) measurement of each label
        last[r["label"]] = r
    print(f"\n### {int(name):,} source orders\n" if name.isdigit() else f"\n### {name}\n")
    print("| task | engine | wall s | compute s | peak RSS MB | vs c360 (wall) | vs c360 (RSS) | answer |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for task in ["sim", "etl", "rfm", "clv", "kmeans"]:
        base = last.get(f"{task} c360")
        for label, r in last.items():
            if not (label == task or label.startswith(task + " ")):
                continue
            engine = label.split(" ", 1)[1] if " " in label else "c360"
            if r.get("failed"):  # bench/scale.sh records a stage that did not finish
                print(f"| {task} | {engine} | failed | | | | | {r.get('why', '')} |")
                continue
            if base and base.get("failed"):
                base = None
            ratio = f"{r['wall_s'] / base['wall_s']:.2f}x" if base else ""
            mem = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base else ""
            comp = "" if r.get("compute_s") is None else f"{r['compute_s']:.2f}"
            print(f"| {task} | {engine} | {r['wall_s']:.2f} | {comp} | {r['peak_rss_mb']:.0f} | {ratio} | {mem} | {r.get('answer') or ''} |")
