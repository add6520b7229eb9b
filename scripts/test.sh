#!/usr/bin/env bash
# Every test of c360 on a fresh machine: installs and starts what the tests need, then runs them.
#   - PostgreSQL (127.0.0.1:5432, trust) and MariaDB (127.0.0.1:3306, root without password),
#     started if they are down (installed by apt if missing);
#   - Debian's Chromium and a CJK font (fonts-noto-cjk) for the dashboard's browser test, and
#     the web packages (npm ci);
#   - mold and clang, the linker .cargo/config.toml asks for.
# Then `cargo test --workspace`, the API fuzzed against its OpenAPI document by schemathesis as
# each role (scripts/fuzz-api.sh, which installs it from PyPI into a venv), the kill -9 crash
# harness on the ETL and the server (scripts/crash-harness.sh), the search for raw phones and
# WeChat ids in logs, answers, tables and LLM requests (scripts/pii-leak-check.sh), and one
# closing line that totals
# every test binary.
# Extra arguments go to cargo test (e.g. `scripts/test.sh -- campaign` for a filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

apt_updated=
need_pkg() { # need_pkg COMMAND PACKAGE...
  if ! command -v "$1" >/dev/null 2>&1; then
    shift
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}
need_pkg mold mold
need_pkg clang clang
need_pkg pg_ctlcluster postgresql
need_pkg mariadbd mariadb-server
need_pkg npm npm
need_pkg sqlite3 sqlite3
if [ ! -x /usr/bin/chromium ]; then need_pkg chromium chromium; fi
# A CJK font, so the dashboard's Chinese pages render as Chinese in the browser test's screenshots
# (Chromium draws boxes without one).
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
for _ in $(seq 1 60); do
  if pg_isready -h 127.0.0.1 -p 5432 -q && mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
    break
  fi
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
mariadb-admin -h 127.0.0.1 -uroot ping

npm --prefix web ci --no-audit --no-fund --loglevel=error

log=$(mktemp)
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
rm -f "$log"
fuzz=skipped
crash=skipped
pii=skipped
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  if scripts/fuzz-api.sh >"${TMPDIR:-/tmp}/c360-fuzz.log" 2>&1; then
    fuzz=passed
  else
    fuzz=failed
    status=1
    tail -n 80 "${TMPDIR:-/tmp}/c360-fuzz.log"
  fi
  grep -E "generated|schemathesis( as [a-z_]+)?: exit|requests over 2 s|slow request" "${TMPDIR:-/tmp}/c360-fuzz.log" || true
  if scripts/crash-harness.sh >"${TMPDIR:-/tmp}/c360-crash.log" 2>&1; then
    crash=passed
  else
    crash=failed
    status=1
  fi
  tail -n 30 "${TMPDIR:-/tmp}/c360-crash.log" | grep -E "crash harness" || tail -n 30 "${TMPDIR:-/tmp}/c360-crash.log"
  if scripts/pii-leak-check.sh >"${TMPDIR:-/tmp}/c360-pii.log" 2>&1; then
    pii=passed
  else
    pii=failed
    status=1
  fi
  tail -n 12 "${TMPDIR:-/tmp}/c360-pii.log"
fi
echo "tests: ${passed} passed, ${failed} failed; API fuzz (schemathesis, every check, as each role): ${fuzz}; crash harness (kill -9): ${crash}; PII leak check: ${pii}"
exit "$status"
