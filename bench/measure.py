"""Runs one command in a child process; prints JSON with its wall time, the compute time it
reports itself (a `TIMING_MS <n>` line), and its peak resident memory.

Run one measurement per interpreter (run.sh does): RUSAGE_CHILDREN is then exactly that child.
"""
import json
import resource
import subprocess
import sys
import time

label, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
p = subprocess.run(cmd, capture_output=True)
wall = time.perf_counter() - t0
if p.returncode != 0:
    sys.stderr.write(p.stderr.decode(errors="replace"))
    sys.exit(f"{label}: exit {p.returncode}")
internal, answer, detail = None, None, None
steps = {}
for line in (p.stderr + p.stdout).decode(errors="replace").splitlines():
    if line.startswith("TIMING_MS "):
        internal = float(line.split()[1]) / 1000.0
    if line.startswith("ANSWER "):
        answer = line[len("ANSWER "):].strip()
    parts = line.split()
    # c360 etl's step table: step name extracted loaded quarantined ms peak_MiB
    if len(parts) == 7 and parts[0].isdigit() and parts[5].isdigit() and parts[6].isdigit():
        steps[parts[1]] = {"ms": int(parts[5]), "peak_mib": int(parts[6])}
        if parts[0] == "6" and parts[1] == "orders":  # step 6 (orders + items) alone
            internal = float(parts[5]) / 1000.0
    if line.startswith("{") and '"bgnbd"' in line:
        detail = json.loads(line)
    if line.startswith("{") and '"checksum"' in line:  # c360 sql --json
        row = json.loads(line)
        answer = f"{row['n']} {row['checksum']}"
if steps and detail is None:
    detail = {"steps": steps}
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"label": label, "wall_s": round(wall, 3), "compute_s": internal, "peak_rss_mb": round(peak, 1), "answer": answer, "detail": detail}))
