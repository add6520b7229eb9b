"""The peers of the benchmark, doing the same work as c360 on the same data.

  etl-pandas  SRC_DIR OUT_DIR   POS + mini-program orders and items from SQLite -> validated Parquet
  etl-duckdb  SRC_DIR OUT_DIR   the same with DuckDB doing the validation and the Parquet writing
  etl-duckdb  cx:POS_URL,WX_URL OUT_DIR
                                the same, the orders and items read from MySQL/PostgreSQL by
                                ConnectorX (Arrow, range partitions on the id, CX_PARTITIONS of them)
  rfm-pandas  WAREHOUSE         per-customer RFM + quintiles on c360's Parquet (same files, same rules)
  rfm-duckdb  WAREHOUSE         the same in DuckDB

Each prints `TIMING_MS <ms>` (work after imports) and `ANSWER <rows> <checksum>` so the engines'
answers can be compared.
"""
import json
import os
import sqlite3
import sys
import time

RFM_SQL = """
WITH base AS (
  SELECT k.customer_id, MAX(o.order_time) AS last_t, COUNT(*) AS frequency, SUM(o.total_fen) AS monetary_fen
  FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key
  WHERE o.status = 'paid' GROUP BY k.customer_id),
obs_end AS (SELECT MAX(order_time) AS t FROM fact_orders),
scored AS (
  SELECT b.customer_id, CAST(FLOOR((epoch(a.t) - epoch(b.last_t)) / 86400) AS BIGINT) AS recency_days,
         b.frequency, b.monetary_fen FROM base b CROSS JOIN obs_end a),
q AS (
  SELECT *, NTILE(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
            NTILE(5) OVER (ORDER BY frequency, customer_id) AS f_score,
            NTILE(5) OVER (ORDER BY monetary_fen, customer_id) AS m_score FROM scored)
SELECT COUNT(*) AS n, SUM(r_score * 100 + f_score * 10 + m_score) AS checksum FROM q
"""


def manifest_files(wh, table):
    mdir = os.path.join(wh, "_manifests")
    latest = sorted(f for f in os.listdir(mdir) if f.endswith(".json"))[-1]
    m = json.load(open(os.path.join(mdir, latest)))
    return [os.path.join(wh, f["path"]) for part in m["tables"][table]["partitions"].values() for f in part]


def read_sources(src):
    import pandas as pd

    pos = sqlite3.connect(os.path.join(src, "cyrg2025.db"))
    wx = sqlite3.connect(os.path.join(src, "cyrgweixin.db"))
    stores = pd.read_sql("SELECT store_id FROM stores", pos)
    products = pd.read_sql("SELECT product_id FROM products", pos)
    po = pd.read_sql("SELECT order_id, order_no, store_id, member_id AS cust, order_time, total_fen, status FROM orders", pos)
    pi = pd.read_sql("SELECT item_id, order_id, product_id, qty, unit_price_fen FROM order_items", pos)
    wo = pd.read_sql("SELECT order_id, order_no, store_id, user_id AS cust, order_time, total_fen, status FROM wx_orders", wx)
    wi = pd.read_sql("SELECT item_id, order_id, product_id, qty, unit_price_fen FROM wx_order_items", wx)
    po["src"], pi["src"], wo["src"], wi["src"] = "P", "P", "W", "W"
    return stores, products, pd.concat([po, wo], ignore_index=True), pd.concat([pi, wi], ignore_index=True)


def read_sources_cx(urls):
    """The same four frames read from MySQL/PostgreSQL servers by ConnectorX, as its users do:
    partitioned on the integer id, decoded natively into Arrow, then handed to pandas."""
    import connectorx as cx
    import pandas as pd

    pos, wx = urls.split(",")
    parts = int(os.environ.get("CX_PARTITIONS", "2"))

    def rd(url, sql, on=None):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        kw = {"partition_on": on, "partition_num": parts} if on else {}
        return cx.read_sql(url, sql, return_type="arrow", **kw).to_pandas()

    stores = rd(pos, "SELECT store_id FROM stores")
    products = rd(pos, "SELECT product_id FROM products")
    po = rd(pos, "SELECT order_id, order_no, store_id, member_id AS cust, order_time, total_fen, status FROM orders", "order_id")
    pi = rd(pos, "SELECT item_id, order_id, product_id, qty, unit_price_fen FROM order_items", "item_id")
    wo = rd(wx, "SELECT order_id, order_no, store_id, user_id AS cust, order_time, total_fen, status FROM wx_orders", "order_id")
    wi = rd(wx, "SELECT item_id, order_id, product_id, qty, unit_price_fen FROM wx_order_items", "item_id")
    po["src"], pi["src"], wo["src"], wi["src"] = "P", "P", "W", "W"
    return stores, products, pd.concat([po, wo], ignore_index=True), pd.concat([pi, wi], ignore_index=True)


def etl_pandas(src, out):
    import pandas as pd

    t0 = time.perf_counter()
    stores, products, o, i = read_sources(src)
    o = o[o.status.isin(["paid", "refunded"])]
    o = o.assign(order_time=pd.to_datetime(o.order_time, format="%Y-%m-%d %H:%M:%S", errors="coerce"))
    o = o[o.order_time.notna() & o.store_id.isin(stores.store_id) & (o.total_fen >= 0)]
    o = o.sort_values(["src", "order_id"]).drop_duplicates(["src", "store_id", "order_no"], keep="first")
    o["order_key"] = o.src + ":" + o.order_id.astype(str)
    o["month"] = o.order_time.dt.strftime("%Y-%m")
    i = i[i.product_id.isin(products.product_id) & i.qty.between(1, 100) & (i.unit_price_fen >= 0)]
    i["order_key"] = i.src + ":" + i.order_id.astype(str)
    i = i.merge(o[["order_key", "month"]], on="order_key", how="inner")
    i["amount_fen"] = i.unit_price_fen * i.qty
    os.makedirs(out, exist_ok=True)
    o.to_parquet(os.path.join(out, "orders.parquet"), compression="zstd", index=False)
    i.to_parquet(os.path.join(out, "items.parquet"), compression="zstd", index=False)
    print(f"TIMING_MS {(time.perf_counter() - t0) * 1000:.0f}")
    print(f"ANSWER {len(o)} {len(i)}")


def etl_duckdb(src, out):
    import duckdb

    t0 = time.perf_counter()
    if src.startswith("cx:"):
        stores, products, o, i = read_sources_cx(src[3:])
    else:
        stores, products, o, i = read_sources(src)  # DuckDB's sqlite extension needs a download; reading is shared
    con = duckdb.connect()
    con.register("o_src", o)
    con.register("i_src", i)
    con.register("stores", stores)
    con.register("products", products)
    os.makedirs(out, exist_ok=True)
    con.execute("""
      CREATE TABLE o AS
      SELECT src || ':' || order_id AS order_key, * EXCLUDE (order_time), t AS order_time, strftime(t, '%Y-%m') AS month FROM (
        SELECT *, try_strptime(order_time, '%Y-%m-%d %H:%M:%S') AS t,
               row_number() OVER (PARTITION BY src, store_id, order_no ORDER BY order_id) AS rn
        FROM o_src WHERE status IN ('paid', 'refunded') AND total_fen >= 0
          AND store_id IN (SELECT store_id FROM stores) AND try_strptime(order_time, '%Y-%m-%d %H:%M:%S') IS NOT NULL)
      WHERE rn = 1""")
    con.execute("""
      CREATE TABLE i AS SELECT i.*, i.unit_price_fen * i.qty AS amount_fen, o.month
      FROM (SELECT *, src || ':' || order_id AS order_key FROM i_src) i JOIN o USING (order_key)
      WHERE i.product_id IN (SELECT product_id FROM products) AND i.qty BETWEEN 1 AND 100 AND i.unit_price_fen >= 0""")
    con.execute(f"COPY o TO '{out}/orders.parquet' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(f"COPY i TO '{out}/items.parquet' (FORMAT parquet, COMPRESSION zstd)")
    n_o = con.execute("SELECT COUNT(*) FROM o").fetchone()[0]
    n_i = con.execute("SELECT COUNT(*) FROM i").fetchone()[0]
    print(f"TIMING_MS {(time.perf_counter() - t0) * 1000:.0f}")
    print(f"ANSWER {n_o} {n_i}")


def rfm_duckdb(wh):
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW fact_orders AS SELECT * FROM read_parquet({manifest_files(wh, 'fact_orders')!r})")
    con.execute(f"CREATE VIEW customer_keys AS SELECT * FROM read_parquet({manifest_files(wh, 'customer_keys')!r})")
    n, checksum = con.execute(RFM_SQL).fetchone()
    print(f"TIMING_MS {(time.perf_counter() - t0) * 1000:.0f}")
    print(f"ANSWER {n} {checksum}")


def ntile(n, k=5):
    import numpy as np

    sizes = [n // k + (1 if b < n % k else 0) for b in range(k)]
    return np.repeat(np.arange(1, k + 1), sizes)


def rfm_pandas(wh):
    import pandas as pd

    t0 = time.perf_counter()
    o = pd.concat([pd.read_parquet(f, columns=["customer_key", "order_time", "total_fen", "status"]) for f in manifest_files(wh, "fact_orders")])
    k = pd.concat([pd.read_parquet(f, columns=["source_key", "customer_id"]) for f in manifest_files(wh, "customer_keys")])
    obs_end = o.order_time.max()
    p = o[o.status == "paid"].merge(k, left_on="customer_key", right_on="source_key")
    b = p.groupby("customer_id").agg(last_t=("order_time", "max"), frequency=("total_fen", "size"), monetary_fen=("total_fen", "sum")).reset_index()
    b["recency_days"] = ((obs_end - b.last_t).dt.total_seconds() // 86400).astype("int64")
    n = len(b)
    b = b.sort_values(["recency_days", "customer_id"], ascending=[False, True]); b["r"] = ntile(n)
    b = b.sort_values(["frequency", "customer_id"]); b["f"] = ntile(n)
    b = b.sort_values(["monetary_fen", "customer_id"]); b["m"] = ntile(n)
    checksum = int((b.r * 100 + b.f * 10 + b.m).sum())
    print(f"TIMING_MS {(time.perf_counter() - t0) * 1000:.0f}")
    print(f"ANSWER {n} {checksum}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"etl-pandas": etl_pandas, "etl-duckdb": etl_duckdb, "rfm-pandas": rfm_pandas, "rfm-duckdb": rfm_duckdb}[cmd](*args)
