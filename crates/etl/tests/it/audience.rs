//! Saved audiences on a simulated chain: the compiled SQL and the per-customer evaluation a
//! server uses for live orders agree on every customer; definitions are versioned, refreshed
//! by each ETL run with their size recorded, limited to stores, refused when SQL would write;
//! overlap, export and lookalike (against the truth) work on the bitmaps.

use super::*;
use c360_core::audience::{self, AudienceSpec, Bought, FieldRule, Op, Rule, Scalar};
use c360_metastore::Metastore;

fn field(f: &str, op: Op, values: Vec<Scalar>) -> Rule {
    Rule::Field(FieldRule {
        field: f.into(),
        op,
        values,
    })
}
fn txt(s: &str) -> Scalar {
    Scalar::Text(s.into())
}
fn num(x: f64) -> Scalar {
    Scalar::Number(x)
}
fn spec(name: &str, rule: Rule) -> AudienceSpec {
    AudienceSpec {
        name: name.into(),
        description: String::new(),
        store_ids: vec![],
        rule: Some(rule),
        sql: None,
        lookalike: None,
    }
}

/// A small deterministic generator of rules over the fields, products, stores and dayparts the
/// chain has.
struct Gen {
    x: u64,
    skus: Vec<String>,
    categories: Vec<String>,
    stores: Vec<i64>,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[(self.next() % v.len() as u64) as usize].clone()
    }
    fn leaf(&mut self) -> Rule {
        match self.next() % 6 {
            0 => field(
                "tier",
                Op::In,
                vec![txt(self.pick(&[
                    "核心客户",
                    "活跃客户",
                    "机会客户",
                    "沉睡/新客户",
                ]))],
            ),
            1 => field(
                "order_count",
                self.pick(&[Op::Ge, Op::Lt, Op::Eq, Op::Ne]),
                vec![num((1 + self.next() % 6) as f64)],
            ),
            2 => field(
                "p_churn_90d",
                self.pick(&[Op::Gt, Op::Le]),
                vec![num((self.next() % 10) as f64 / 10.0)],
            ),
            3 => field(
                self.pick(&["avg_rating", "p_alive", "next_order_days"]),
                self.pick(&[Op::IsNull, Op::NotNull]),
                vec![],
            ),
            _ => {
                let mut b = Bought {
                    min_times: (1 + self.next() % 3) as i64,
                    ..Default::default()
                };
                if self.next().is_multiple_of(2) {
                    b.sku = Some(self.pick(&self.skus.clone()));
                } else if self.next().is_multiple_of(2) {
                    b.category = Some(self.pick(&self.categories.clone()));
                }
                if self.next().is_multiple_of(2) {
                    b.daypart = Some(self.pick(&["breakfast", "lunch", "dinner"]).to_string());
                }
                if self.next().is_multiple_of(3) {
                    b.store_id = Some(self.pick(&self.stores.clone()));
                }
                if self.next().is_multiple_of(3) {
                    b.channel = Some(self.pick(&["pos", "pickup", "delivery"]).to_string());
                }
                if self.next().is_multiple_of(2) {
                    b.within_days = Some(self.pick(&[30, 90, 365]));
                }
                if self.next().is_multiple_of(4) {
                    b.max_times = Some(b.min_times + (self.next() % 3) as i64);
                }
                Rule::Bought(b)
            }
        }
    }
    fn rule(&mut self, depth: u32) -> Rule {
        if depth == 0 {
            return self.leaf();
        }
        match self.next() % 4 {
            0 => Rule::All((0..2).map(|_| self.rule(depth - 1)).collect()),
            1 => Rule::Any((0..2).map(|_| self.rule(depth - 1)).collect()),
            2 => Rule::Not(Box::new(self.rule(depth - 1))),
            _ => self.leaf(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_sql_and_per_customer_rules_agree_on_every_customer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 12_000, 47);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let w = Warehouse::open(&wh).unwrap();
    let sess = Session::open(&w).await.unwrap();
    let index = c360_core::serving::open_or_build(&w, &sess, 100_000)
        .await
        .unwrap();
    let meta = Metastore::open(&cfg.metastore()).await.unwrap();
    let as_of = audience::as_of(&sess).await.unwrap();
    let cat = audience::Catalog::read(&sess).await.unwrap();
    let ids: Vec<i64> = audience::evaluate(&sess, &meta, &spec("all", Rule::All(vec![])), as_of)
        .await
        .unwrap()
        .iter()
        .map(|c| c as i64)
        .collect();
    // Every customer's profile row and orders, read once.
    let people: Vec<(i64, serde_json::Value, Vec<audience::OrderFact>)> = ids
        .iter()
        .map(|c| {
            let row = index.rows("v_customer_360", *c).unwrap().remove(0);
            let orders = index
                .orders(*c)
                .unwrap()
                .iter()
                .map(audience::OrderFact::of_row)
                .collect();
            (*c, row, orders)
        })
        .collect();
    assert!(people.len() > 1000, "{}", people.len());
    let mut skus: Vec<String> = cat.0.values().map(|v| v.0.clone()).collect();
    skus.sort();
    let mut categories: Vec<String> = cat.0.values().filter_map(|v| v.1.clone()).collect();
    categories.sort();
    categories.dedup();
    let mut g = Gen {
        x: 0x2545_F491_4F6C_DD1D,
        skus,
        categories,
        stores: sess
            .query("SELECT store_id FROM stores ORDER BY store_id LIMIT 8")
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                let a = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .clone();
                (0..a.len()).map(move |i| a.value(i))
            })
            .collect(),
    };
    let mut rules = vec![
        field("rfm_class", Op::Eq, vec![txt("重要价值客户")]),
        Rule::Not(Box::new(field(
            "lifecycle",
            Op::In,
            vec![txt("流失"), txt("沉睡")],
        ))),
        Rule::All(vec![
            Rule::Bought(Bought {
                daypart: Some("lunch".into()),
                min_times: 2,
                within_days: Some(180),
                ..Default::default()
            }),
            field("clv_12m_fen", Op::Ge, vec![num(5000.0)]),
        ]),
        Rule::Any(vec![
            field("gender", Op::NotIn, vec![txt("F")]),
            field("review_count", Op::Gt, vec![num(0.0)]),
        ]),
    ];
    rules.extend((0..40).map(|_| g.rule(3)));
    let mut nontrivial = 0;
    for (i, r) in rules.iter().enumerate() {
        let sp = spec(&format!("r{i}"), r.clone());
        sp.validate().unwrap();
        let batch = audience::evaluate(&sess, &meta, &sp, as_of).await.unwrap();
        let mut diff = Vec::new();
        for (c, row, orders) in &people {
            let one = audience::matches(r, row, orders, &cat, as_of);
            if one != batch.contains(*c as u64) {
                diff.push(*c);
            }
        }
        assert!(
            diff.is_empty(),
            "rule {i} {r:?}: SQL and per-customer disagree on {} customers, e.g. {:?}",
            diff.len(),
            &diff[..diff.len().min(5)]
        );
        // Every member is a customer.
        assert!(batch.iter().all(|c| ids.binary_search(&(c as i64)).is_ok()));
        if !batch.is_empty() && (batch.len() as usize) < people.len() {
            nontrivial += 1;
        }
    }
    assert!(
        nontrivial >= 30,
        "only {nontrivial} rules split the customers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_are_versioned_refreshed_scoped_exported_and_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 30_000, 53);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let meta = Metastore::open(&cfg.metastore()).await.unwrap();
    let core = spec("core", field("tier", Op::Eq, vec![txt("核心客户")]));
    let a = audience::create(&meta, &core, "t").await.unwrap();
    let mut by_sql = spec("loyal", Rule::All(vec![]));
    by_sql.rule = None;
    by_sql.sql = Some("SELECT customer_id FROM v_customer_360 WHERE order_count >= 3".into());
    let b = audience::create(&meta, &by_sql, "t").await.unwrap();
    let w = Warehouse::open(&wh).unwrap();
    let store: i64 = count(&wh, "SELECT MIN(home_store_id) FROM customer_segmentation").await;
    let mut scoped = spec("core here", field("tier", Op::Eq, vec![txt("核心客户")]));
    scoped.store_ids = vec![store];
    let c = audience::create(&meta, &scoped, "t").await.unwrap();

    // A rerun refreshes every audience and records its size at the new snapshot.
    c360_etl::refresh_only(&cfg, 999).await.unwrap();
    let sess = Session::open(&w).await.unwrap();
    let wv = sess.manifest.version as i64;
    let want_a = count(
        &wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE tier = '核心客户'",
    )
    .await;
    let want_b = count(
        &wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE order_count >= 3",
    )
    .await;
    let want_ab = count(
        &wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE tier = '核心客户' AND order_count >= 3",
    )
    .await;
    let want_c = count(
        &wh,
        &format!("SELECT COUNT(*) FROM v_customer_360 WHERE tier = '核心客户' AND home_store_id = {store}"),
    )
    .await;
    assert!(want_a > 50 && want_b > want_a && want_c > 0 && want_c < want_a);
    for (id, want) in [(a, want_a), (b, want_b), (c, want_c)] {
        let s = audience::sizes(&meta, id).await.unwrap();
        let last = s.last().unwrap();
        assert_eq!(
            (last.wh_version, last.size),
            (wv, want),
            "audience {id}: {s:?}"
        );
    }
    let aa = audience::get(&meta, a).await.unwrap();
    let bb = audience::get(&meta, b).await.unwrap();
    let ma = audience::members(&w, &sess, &meta, &aa).await.unwrap();
    let mb = audience::members(&w, &sess, &meta, &bb).await.unwrap();
    let o = audience::overlap(&[(a, ma.clone()), (b, mb.clone())]);
    assert_eq!(o.intersections[0][1] as i64, want_ab);
    assert_eq!(o.all as i64, want_ab);
    assert_eq!(o.any as i64, want_a + want_b - want_ab);

    // A new version keeps the old one; the size is recorded per version.
    let mut v2 = core.clone();
    v2.rule = Some(field(
        "tier",
        Op::In,
        vec![txt("核心客户"), txt("活跃客户")],
    ));
    assert_eq!(audience::update(&meta, a, &v2, "t2").await.unwrap(), 2);
    let vs = audience::versions(&meta, a).await.unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!((vs[0].version, vs[0].changed_by.as_str()), (2, "t2"));
    let aa2 = audience::get(&meta, a).await.unwrap();
    let ma2 = audience::members(&w, &sess, &meta, &aa2).await.unwrap();
    assert!(ma2.len() > ma.len() && ma.is_subset(&ma2));

    // SQL that would write, or returns no customer_id, is refused with the field named.
    for (bad_sql, why) in [
        ("DELETE FROM orders", "sql:"),
        ("CREATE TABLE x AS SELECT 1 AS customer_id", "sql:"),
        ("SELECT order_count FROM v_customer_360", "sql:"),
    ] {
        let mut s = by_sql.clone();
        s.sql = Some(bad_sql.into());
        let e = audience::evaluate(&sess, &meta, &s, 0).await.unwrap_err();
        assert!(e.to_string().starts_with(why), "{bad_sql}: {e}");
    }
    // Bad rules name the field.
    let e = spec("x", field("phone_masked", Op::NotNull, vec![]))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("phone_masked"), "{e}");
    let e = spec("x", field("tier", Op::Gt, vec![num(1.0)]))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("rule.field.values"), "{e}");

    // Export: every member once, in CSV and in Parquet.
    let mut csv = Vec::new();
    let n = audience::export(&sess, &ma, audience::Format::Csv, &mut csv)
        .await
        .unwrap();
    assert_eq!(n as i64, want_a);
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("customer_id,home_store_id"));
    assert_eq!(lines.count() as i64, want_a);
    assert!(!text.contains("phone"));
    let path = dir.path().join("a.parquet");
    let n = audience::export(
        &sess,
        &ma,
        audience::Format::Parquet,
        std::fs::File::create(&path).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(n as i64, want_a);
    let rd = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = rd.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows as i64, want_a);

    // A lookalike holds customers outside its seed, within its stores, as many as asked.
    let mut look = spec("like core", Rule::All(vec![]));
    look.rule = None;
    look.lookalike = Some(audience::Lookalike { seed: a, size: 300 });
    let l = audience::create(&meta, &look, "t").await.unwrap();
    let ll = audience::get(&meta, l).await.unwrap();
    let ml = audience::members(&w, &sess, &meta, &ll).await.unwrap();
    assert_eq!(ml.len(), 300);
    assert!(ml.is_disjoint(&ma2));
    // Its own seed, or a seed that leads back to it, is refused.
    let mut cyc = look.clone();
    cyc.lookalike = Some(audience::Lookalike { seed: l, size: 10 });
    assert!(audience::update(&meta, l, &cyc, "t").await.is_err());

    // Against the truth: the expansion finds the hidden rest of a group far above chance.
    let e = c360_eval::audience::evaluate_lookalike(&wh, &sim.truth_url)
        .await
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&e).unwrap());
    let group = |n: &str| e.groups.iter().find(|g| g.group == n).unwrap();
    // Next year's top spenders (a fifth of the customers): the expansion finds them at well over
    // twice the base rate, as well as ranking by predicted CLV does.
    assert!(group("top_future_spend").lift > 2.0, "{e:?}");
    // A taste (breakfast), which CLV knows nothing of: many times the base rate.
    assert!(group("breakfast_lovers").lift > 5.0, "{e:?}");
    let g = group("breakfast_lovers");
    assert!(g.precision > 3.0 * g.clv_precision, "{g:?}");
    let top = e
        .groups
        .iter()
        .find(|g| g.group == "top_future_spend")
        .unwrap();
    assert!(top.precision > 0.8 * top.clv_precision, "{top:?}");
}
