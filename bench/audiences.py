"""The peer side of `c360 analyze bitmaps`: the same two audiences as sorted int64 id arrays,
intersected, united, differenced and counted with numpy (sorted-array set operations) and with
DuckDB (a join of two id tables), median of 5, printed as JSON."""
import json, sys, time

import numpy as np
import duckdb

d = sys.argv[1]
a = np.fromfile(f"{d}/a.i64", dtype="<i8")
b = np.fromfile(f"{d}/b.i64", dtype="<i8")


def med(f):
    out = []
    for _ in range(5):
        t = time.perf_counter()
        r = f()
        out.append(((time.perf_counter() - t) * 1e3, r))
    out.sort(key=lambda x: x[0])
    return {"ms": out[2][0], "size": int(out[2][1])}


res = {
    "numpy": {
        "intersection": med(lambda: len(np.intersect1d(a, b, assume_unique=True))),
        "union": med(lambda: len(np.union1d(a, b))),
        "difference": med(lambda: len(np.setdiff1d(a, b, assume_unique=True))),
    }
}
con = duckdb.connect()
con.execute("SET threads TO 2")
con.register("a_df", {"id": a})
con.register("b_df", {"id": b})
con.execute("CREATE TABLE a AS SELECT id FROM a_df")
con.execute("CREATE TABLE b AS SELECT id FROM b_df")
res["duckdb"] = {
    "intersection": med(lambda: con.execute("SELECT COUNT(*) FROM a JOIN b USING (id)").fetchone()[0]),
    "union": med(lambda: con.execute("SELECT COUNT(*) FROM (SELECT id FROM a UNION SELECT id FROM b)").fetchone()[0]),
    "difference": med(lambda: con.execute("SELECT COUNT(*) FROM (SELECT id FROM a EXCEPT SELECT id FROM b)").fetchone()[0]),
}
print(json.dumps(res, indent=2))
