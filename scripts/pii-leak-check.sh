#!/usr/bin/env bash
# No raw personal identifier leaves the sources: simulate both systems, run the ETL and serve
# with debug logging, call the API as an admin (a store manager too) including an AI insight
# through a fake LLM (which records what it is sent) and a diagnosis of a message that carries a
# phone number, then look for every raw phone, openid and unionid of the sources — in the logs,
# every API answer, every warehouse table (quarantine included), every metastore table (audit
# log, identity graph, stream log included) and the LLM request bodies. Any hit fails.
# Usage: scripts/pii-leak-check.sh [path/to/c360]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/c360-target}"
bin="$(realpath "${1:-$CARGO_TARGET_DIR/debug/c360}")"
work=$(mktemp -d)
server=
llm=
cleanup() {
  for p in $server $llm; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export C360_QUIET=true C360_LOG=debug
fail() { echo "pii leak check: FAILED: $*"; exit 1; }
"$bin" sim --orders 3000 --stores 50 >>out.txt 2>>logs.txt
"$bin" etl >>out.txt 2>>logs.txt
wh=data/hotdog2030
meta=$wh/_metastore.db
# The raw identifiers, as the sources hold them (and a phone's bare 11 digits).
{
  sqlite3 data/cyrg2025.db "SELECT phone FROM members WHERE phone IS NOT NULL AND phone <> ''"
  sqlite3 data/cyrgweixin.db "SELECT phone FROM wx_users WHERE phone IS NOT NULL AND phone <> ''"
  sqlite3 data/cyrgweixin.db "SELECT openid FROM wx_users WHERE openid IS NOT NULL AND openid <> ''"
  sqlite3 data/cyrgweixin.db "SELECT unionid FROM wx_users WHERE unionid IS NOT NULL AND unionid <> ''"
} | sed 's/[^0-9A-Za-z_+-]//g' | awk 'length($0) >= 8' >raw0.txt
{ cat raw0.txt; sed -n 's/^[^0-9]*\(1[3-9][0-9]\{9\}\)$/\1/p' raw0.txt; } | sort -u >raw.txt
[ "$(wc -l <raw.txt)" -gt 100 ] || fail "too few identifiers in the sources"
phone=$(sqlite3 data/cyrg2025.db "SELECT phone FROM members WHERE phone IS NOT NULL LIMIT 1")

# A fake OpenAI-compatible LLM that keeps every request body.
# Ports the kernel says are free now (a fixed or pid-derived one may be taken on a busy machine).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lport=$(free_port)
python3 - "$lport" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open("llm.jsonl", "ab") as f:
            f.write(body + b"\n")
        sec = {"title": "t", "text": "ok"}
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(
            {"value": sec, "churn_risk": sec, "marketing": sec, "product_strategy": sec})}, "finish_reason": "stop"}]}
        out = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
llm=$!
key=$("$bin" apikey create --name leak --role admin 2>>logs.txt | tail -n1)
port=$(free_port)
base="http://127.0.0.1:$port/api/v1"
C360_RATE_LIMIT=0 C360_LLM_BASE_URL="http://127.0.0.1:$lport/v1" "$bin" serve --addr "127.0.0.1:$port" >>out.txt 2>>logs.txt &
server=$!
# A debug build on a loaded machine can take a while to open the snapshot: wait up to two
# minutes, and if the server dies or never answers, say so with the end of its log.
up=
for _ in $(seq 1 1200); do
  if curl -fsS "$base/health" >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then
  tail -n 20 logs.txt | cut -c1-300
  fail "the server on port $port did not answer /health (alive: $(kill -0 "$server" 2>/dev/null && echo yes || echo no))"
fi
get() { curl -sS -H "Authorization: Bearer $1" "$base$2" >>answers.txt; echo >>answers.txt; }
get "$key" /overview
get "$key" "/customers?page_size=200"
ids=$(curl -fsS -H "Authorization: Bearer $key" "$base/customers?page_size=15" | python3 -c 'import json,sys; print(" ".join(str(c["customer_id"]) for c in json.load(sys.stdin)["items"]))')
store=$(curl -fsS -H "Authorization: Bearer $key" "$base/customers/${ids%% *}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["profile"]["home_store_id"])')
manager=$("$bin" apikey create --name leak-m --role store_manager --stores "$store" 2>>logs.txt | tail -n1)
for id in $ids; do
  for p in "" /timeline /behavior /emotion /preferences /predictions /recommendations /network /insights; do
    get "$key" "/customers/$id$p"
    get "$manager" "/customers/$id$p"
  done
done
for p in /segments /sentiment /network /service/tickets /audit /live /recommendations /campaigns/suggestions; do
  get "$key" "$p"
done
curl -sS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -X POST "$base/service/diagnose" \
  -d "{\"message\": \"券用不了，打我电话 ${phone:0:3}-${phone:3:4}-${phone:7:4} 或者 +86 $phone\"}" >>answers.txt
echo >>answers.txt
kill "$server"; wait "$server" 2>/dev/null || true; server=
[ -s llm.jsonl ] || fail "the fake LLM was never called"
# Every table of the warehouse and the metastore, whole.
for t in $("$bin" sql --json "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'" 2>>logs.txt | python3 -c 'import json,sys; print(" ".join(json.loads(l)["table_name"] for l in sys.stdin))'); do
  "$bin" sql --json "SELECT * FROM $t" >>warehouse.txt 2>>logs.txt || true
done
sqlite3 "$meta" .dump >metastore.txt
[ -s warehouse.txt ] && [ -s metastore.txt ] && [ -s logs.txt ] && [ -s answers.txt ] || fail "an artifact is empty"
grep -q '"customer_id"' answers.txt || fail "the API answered nothing useful"
grep -q 'DEBUG' logs.txt || fail "no debug logging was captured"
# Whole tokens only: a phone is a run of digits (not the digits after a decimal point, where
# 0.13888888889 is a share, not 138-8888-8888), an openid/unionid a run of [A-Za-z0-9_-].
cat >scan.py <<'PY'
import re, sys
raw = set(l.strip() for l in open("raw.txt") if l.strip())
phones = set(r[-11:] for r in raw if r[-11:].isdigit() and len(r.lstrip("+")) >= 11)
found = 0
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8", errors="replace").read()
    hits = []
    for m in re.finditer(r"(?<![0-9.])[0-9]{11,}(?![0-9])", text):
        run = m.group(0)
        if run[-11:] in phones or run in raw:
            hits.append(m)
    for m in re.finditer(r"[A-Za-z0-9_-]{20,}", text):
        if m.group(0) in raw:
            hits.append(m)
    if hits:
        print(f"pii leak check: {len(hits)} raw identifiers in {path}, where (the value shown as <RAW>):", file=sys.stderr)
        for m in hits[:3]:
            print("   ", text[max(0, m.start() - 160):m.start()] + "<RAW>" + text[m.end():m.end() + 80], file=sys.stderr)
    found += len(hits)
print(found)
PY
# The scanner finds what it looks for: the sources themselves are full of identifiers.
sqlite3 data/cyrg2025.db .dump >sources.txt
sqlite3 data/cyrgweixin.db .dump >>sources.txt
seen=$(python3 scan.py sources.txt 2>/dev/null)
[ "$seen" -gt 100 ] || fail "the scanner finds only $seen identifiers in the sources themselves"
leaks=$(python3 scan.py logs.txt out.txt answers.txt warehouse.txt metastore.txt llm.jsonl)
[ "$leaks" -eq 0 ] || fail "$leaks raw identifiers found"
echo "pii leak check: the scanner finds $seen in the sources; none of $(wc -l <raw.txt) raw phones/openids/unionids in $(du -ch logs.txt out.txt answers.txt warehouse.txt metastore.txt llm.jsonl | tail -n1 | cut -f1) of logs (debug), answers, warehouse, metastore and LLM requests ($(wc -l <llm.jsonl) calls)"
