//! Step 5: deterministic identity resolution across the POS and the mini-program.
//!
//! Nodes are source ids (`M:<member_id>`, `U:<wx user_id>`). Edges, each with a named rule:
//! - `verified_phone`: the same phone, verified on both sides (SMS at the POS, WeChat's own
//!   number in the mini-program);
//! - `phone_single_match`: an unverified POS phone that matches exactly one verified id;
//! - `unionid`: two mini-program accounts with the same WeChat unionid;
//! - `member_card`: a mini-program user who bound their POS member card.
//!
//! Placeholder numbers never link; a phone or unionid shared by more than
//! `max_ids_per_phone` ids is treated as shared (a staff or family number) and blocked. Manual
//! blocks (`c360 identity unmerge`) cut a node loose. Components become customers; a customer
//! keeps its id across runs (the oldest id in the component wins) and every change of a node's
//! customer is written to the journal, which is what makes a merge reversible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use c360_db::{get_i64, get_text, Db};
use c360_metastore::Metastore;
use c360_model::parse_ts;
use c360_warehouse::arrow::array::{
    ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Txn};
use indicatif::ProgressBar;

use crate::config::EtlConfig;
use crate::error::Result;
use crate::extract::Ctx;

struct Node {
    key: String,
    phone: Option<String>,
    verified: bool,
    unionid: Option<String>,
    card: Option<String>,
    bound_card: Option<String>,
    phone_masked: Option<String>,
    name_masked: Option<String>,
    gender: Option<String>,
    birth_year: Option<i64>,
    store: Option<i64>,
    created: Option<String>,
    customer: Option<i64>,
}

struct Dsu {
    p: Vec<usize>,
}
impl Dsu {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.p[r] != r {
            r = self.p[r];
        }
        let mut x = x;
        while self.p[x] != r {
            let n = self.p[x];
            self.p[x] = r;
            x = n;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        self.p[hi] = lo;
        true
    }
}

/// The linking decision, separated from I/O so it can be tested and evaluated on its own.
/// Returns, per node index, its component root and the rule that first linked it.
fn link(
    nodes: &[Node],
    blocked: &HashSet<String>,
    max_per_key: usize,
) -> (Vec<usize>, Vec<&'static str>, Vec<String>) {
    let mut d = Dsu {
        p: (0..nodes.len()).collect(),
    };
    let mut rule: Vec<&'static str> = vec!["self"; nodes.len()];
    let mut notes = Vec::new();
    let live = |i: usize| !blocked.contains(&nodes[i].key);
    let mut by_phone: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_union: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_card: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if !live(i) {
            continue;
        }
        if let Some(p) = &n.phone {
            by_phone.entry(p).or_default().push(i);
        }
        if let Some(u) = &n.unionid {
            by_union.entry(u).or_default().push(i);
        }
        if let Some(c) = &n.card {
            by_card.entry(c).or_default().push(i);
        }
    }
    let mark = |d: &mut Dsu, a: usize, b: usize, r: &'static str, rule: &mut Vec<&'static str>| {
        if d.union(a, b) {
            if rule[b] == "self" {
                rule[b] = r;
            }
            if rule[a] == "self" {
                rule[a] = r;
            }
        }
    };
    // Deterministic order: sort keys.
    let mut phones: Vec<_> = by_phone.into_iter().collect();
    phones.sort();
    for (_, ids) in phones {
        if ids.len() > max_per_key {
            notes.push(format!(
                "phone shared by {} ids blocked as a shared number",
                ids.len()
            ));
            continue;
        }
        let verified: Vec<usize> = ids.iter().copied().filter(|i| nodes[*i].verified).collect();
        for w in verified.windows(2) {
            mark(&mut d, w[0], w[1], "verified_phone", &mut rule);
        }
        let unverified: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|i| !nodes[*i].verified)
            .collect();
        if verified.len() == 1 {
            for u in unverified {
                mark(&mut d, verified[0], u, "phone_single_match", &mut rule);
            }
        }
    }
    let mut unions: Vec<_> = by_union.into_iter().collect();
    unions.sort();
    for (_, ids) in unions {
        if ids.len() > max_per_key {
            notes.push(format!("unionid shared by {} ids blocked", ids.len()));
            continue;
        }
        for w in ids.windows(2) {
            mark(&mut d, w[0], w[1], "unionid", &mut rule);
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        if !live(i) {
            continue;
        }
        if let Some(bc) = &n.bound_card {
            if let Some(ms) = by_card.get(bc.as_str()) {
                if ms.len() == 1 {
                    mark(&mut d, i, ms[0], "member_card", &mut rule);
                }
            }
        }
    }
    let roots = (0..nodes.len()).map(|i| d.find(i)).collect();
    (roots, rule, notes)
}

/// Orders source keys as a person reads them: digit runs by their number (`M:2` before
/// `M:10`), the rest as text. Customers are numbered in this order, so the numbering follows
/// the sources' own ids whatever their width or prefix (`M:14` in one layout, `M:C1000000014`
/// in another).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some((digit, run))
        })
    }
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, p)), Some((true, q))) => {
                let (p0, q0) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                let o = p0.len().cmp(&q0.len()).then(p0.cmp(q0));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            (Some((_, p)), Some((_, q))) => {
                let o = p.cmp(q);
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Every identity node, streamed from the metastore a row at a time (not every row held as a
/// driver row first: at 2M nodes those took ~3 GB).
async fn load_nodes(db: &Db) -> Result<Vec<Node>> {
    use futures::TryStreamExt;
    let sql = "SELECT source_key, phone_hash, phone_verified, unionid_hash, card_no, bound_card_no, phone_masked, name_masked, \
             gender, birth_year, register_store_id, created_at, customer_id FROM identity_nodes ORDER BY source_key";
    let mut nodes: Vec<Node> = Vec::new();
    let mut rows = c360_db::query(sql).fetch(&db.pool);
    while let Some(r) = rows.try_next().await.map_err(|e| c360_db::DbError::Sql {
        what: "identity_nodes".into(),
        source: e,
    })? {
        let r = &r;
        nodes.push(Node {
            key: get_text(r, "source_key").unwrap_or_default(),
            phone: get_text(r, "phone_hash"),
            verified: get_i64(r, "phone_verified").unwrap_or(0) == 1,
            unionid: get_text(r, "unionid_hash"),
            card: get_text(r, "card_no"),
            bound_card: get_text(r, "bound_card_no"),
            phone_masked: get_text(r, "phone_masked"),
            name_masked: get_text(r, "name_masked"),
            gender: get_text(r, "gender"),
            birth_year: get_i64(r, "birth_year"),
            store: get_i64(r, "register_store_id"),
            created: get_text(r, "created_at"),
            customer: get_i64(r, "customer_id"),
        });
    }
    nodes.sort_by(|a, b| natural_cmp(&a.key, &b.key));
    Ok(nodes)
}

pub async fn resolve(
    cfg: &EtlConfig,
    meta: &Metastore,
    txn: &mut Txn,
    ctx: &mut Ctx,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let nodes = load_nodes(&meta.db).await?;
    let blocked: HashSet<String> = meta
        .db
        .fetch_all("SELECT source_key FROM identity_blocks")
        .await?
        .iter()
        .filter_map(|r| get_text(r, "source_key"))
        .collect();
    let (roots, rule, notes) = link(&nodes, &blocked, cfg.max_ids_per_phone);
    for n in notes.iter().take(5) {
        tracing::debug!(note = %n, "identity");
    }
    // Components, largest first (ties by smallest node index) so ids are claimed deterministically.
    let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in roots.iter().enumerate() {
        comps.entry(*r).or_default().push(i);
    }
    let mut comps: Vec<Vec<usize>> = comps.into_values().collect();
    comps.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let mut next_id = nodes.iter().filter_map(|n| n.customer).max().unwrap_or(0) + 1;
    let mut claimed: HashSet<i64> = HashSet::new();
    let mut assign: Vec<i64> = vec![0; nodes.len()];
    for c in &comps {
        let mut olds: Vec<i64> = c
            .iter()
            .filter_map(|i| nodes[*i].customer)
            .filter(|id| !claimed.contains(id))
            .collect();
        olds.sort();
        let id = match olds.first() {
            Some(id) => *id,
            None => {
                next_id += 1;
                next_id - 1
            }
        };
        claimed.insert(id);
        for i in c {
            assign[*i] = id;
        }
    }
    // The changes are staged; they reach the graph and its journal once the warehouse commit
    // carrying them (watermark `identity.run`) is published (`Metastore::settle_identity`).
    let mut changes = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.customer == Some(assign[i]) {
            continue;
        }
        changes.push(c360_metastore::IdentityChange {
            source_key: n.key.clone(),
            action: if n.customer.is_none() {
                "assign"
            } else {
                "move"
            },
            from_customer: n.customer,
            to_customer: assign[i],
            rule: rule[i].to_string(),
        });
    }
    meta.stage_identity(run_id, &changes).await?;
    txn.set_watermark(c360_metastore::IDENTITY_RUN_WATERMARK, run_id.to_string());
    let moved = changes.iter().filter(|c| c.action == "move").count();
    ctx.merged_keys = nodes.len() as u64 - comps.len() as u64;
    ctx.customers = comps.len() as u64;
    tracing::info!(
        nodes = nodes.len(),
        customers = comps.len(),
        moved,
        "identity resolved"
    );

    // customer_keys and customers tables.
    let (mut sk, mut cid, mut rl) = (
        StringBuilder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
    );
    for (i, n) in nodes.iter().enumerate() {
        sk.append_value(&n.key);
        cid.append_value(assign[i]);
        rl.append_value(rule[i]);
    }
    let kb = RecordBatch::try_new(
        tables::schema("customer_keys"),
        vec![
            Arc::new(sk.finish()),
            Arc::new(cid.finish()),
            Arc::new(rl.finish()),
        ],
    )?;
    txn.replace("customer_keys", vec![kb])?;

    let mut b_id = Int64Builder::new();
    let mut b_ph = StringBuilder::new();
    let mut b_pm = StringBuilder::new();
    let mut b_nm = StringBuilder::new();
    let mut b_g = StringBuilder::new();
    let mut b_by = Int64Builder::new();
    let mut b_mc = Int64Builder::new();
    let mut b_wc = Int64Builder::new();
    let mut b_st = Int64Builder::new();
    let mut b_fs = TimestampMicrosecondBuilder::new().with_timezone("+08:00");
    let mut b_keys = StringBuilder::new();
    let mut comps_sorted = comps.clone();
    comps_sorted.sort_by_key(|c| assign[c[0]]);
    for c in &comps_sorted {
        let pick = |f: &dyn Fn(&Node) -> Option<String>| c.iter().find_map(|i| f(&nodes[*i]));
        b_id.append_value(assign[c[0]]);
        b_ph.append_option(pick(&|n| n.phone.clone()));
        b_pm.append_option(pick(&|n| n.phone_masked.clone()));
        b_nm.append_option(pick(&|n| n.name_masked.clone()));
        b_g.append_option(pick(&|n| n.gender.clone()));
        b_by.append_option(c.iter().find_map(|i| nodes[*i].birth_year));
        b_mc.append_value(
            c.iter()
                .filter(|i| nodes[**i].key.starts_with("M:"))
                .count() as i64,
        );
        b_wc.append_value(
            c.iter()
                .filter(|i| nodes[**i].key.starts_with("U:"))
                .count() as i64,
        );
        b_st.append_option(c.iter().find_map(|i| nodes[*i].store));
        b_fs.append_option(
            c.iter()
                .filter_map(|i| nodes[*i].created.as_deref().and_then(|t| parse_ts(t).ok()))
                .min()
                .map(c360_model::ts_micros),
        );
        let keys: Vec<&str> = c.iter().map(|i| nodes[*i].key.as_str()).collect();
        b_keys.append_value(keys.join(","));
        pb.inc(1);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(b_id.finish()),
        Arc::new(b_ph.finish()),
        Arc::new(b_pm.finish()),
        Arc::new(b_nm.finish()),
        Arc::new(b_g.finish()),
        Arc::new(b_by.finish()),
        Arc::new(b_mc.finish()),
        Arc::new(b_wc.finish()),
        Arc::new(b_st.finish()),
        Arc::new(b_fs.finish()),
        Arc::new(b_keys.finish()),
    ];
    let cb = RecordBatch::try_new(tables::schema("customers"), cols)?;
    txn.replace("customers", vec![cb])?;
    Ok((nodes.len() as u64, comps.len() as u64))
}

/// Cuts a source id loose from its customer (takes effect at the next ETL run, journaled there).
pub async fn unmerge(metastore_url: &str, source_key: &str, reason: &str) -> Result<()> {
    let meta = Metastore::open(metastore_url).await?;
    meta.db
        .upsert_rows(
            "identity_blocks",
            &["source_key", "reason", "at"],
            "source_key",
            &[vec![
                source_key.into(),
                reason.into(),
                chrono::Utc::now().to_rfc3339().into(),
            ]],
        )
        .await?;
    meta.db.close().await;
    Ok(())
}

/// Lifts a manual block (the reverse of `unmerge`).
pub async fn remerge(metastore_url: &str, source_key: &str) -> Result<()> {
    let meta = Metastore::open(metastore_url).await?;
    let b = meta.db.backend;
    c360_db::query(format!(
        "DELETE FROM identity_blocks WHERE source_key = {}",
        b.ph(1)
    ))
    .bind(source_key.to_string())
    .execute(&meta.db.pool)
    .await
    .map_err(|e| c360_db::DbError::Sql {
        what: "remerge".into(),
        source: e,
    })?;
    meta.db.close().await;
    Ok(())
}

#[cfg(test)]
mod natural {
    use super::natural_cmp;
    use std::cmp::Ordering::*;

    #[test]
    fn digit_runs_compare_by_number() {
        assert_eq!(natural_cmp("M:2", "M:10"), Less);
        assert_eq!(natural_cmp("M:10", "M:10"), Equal);
        assert_eq!(natural_cmp("M:9", "U:1"), Less);
        assert_eq!(natural_cmp("M:C1000000014", "M:C1000000007"), Greater);
        assert_eq!(natural_cmp("M:007", "M:7"), Less); // equal numbers: the text decides
        let mut v = vec!["U:3", "M:100", "M:20", "M:3", "U:10"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["M:3", "M:20", "M:100", "U:3", "U:10"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, phone: Option<&str>, verified: bool, unionid: Option<&str>) -> Node {
        Node {
            key: key.into(),
            phone: phone.map(Into::into),
            verified,
            unionid: unionid.map(Into::into),
            card: None,
            bound_card: None,
            phone_masked: None,
            name_masked: None,
            gender: None,
            birth_year: None,
            store: None,
            created: None,
            customer: None,
        }
    }

    #[test]
    fn links_by_rules_and_blocks_shared_numbers() {
        let mut nodes = vec![
            node("M:1", Some("h1"), true, None),
            node("U:1", Some("h1"), true, Some("u1")),
            node("U:2", None, true, Some("u1")),
            node("M:2", Some("h2"), false, None), // unverified, no verified partner
            node("M:3", Some("h3"), false, None), // unverified, single verified match
            node("U:3", Some("h3"), true, None),
        ];
        // A staff number on 6 members.
        for i in 10..16 {
            nodes.push(node(&format!("M:{i}"), Some("staff"), true, None));
        }
        let (roots, rule, _) = link(&nodes, &HashSet::new(), 4);
        assert_eq!(roots[0], roots[1]);
        assert_eq!(roots[1], roots[2]);
        assert_eq!(rule[2], "unionid");
        assert_ne!(roots[3], roots[0]);
        assert_eq!(roots[4], roots[5]);
        assert_eq!(rule[4], "phone_single_match");
        for (i, root) in roots.iter().enumerate().skip(6) {
            assert_eq!(*root, i, "shared staff number must not link");
        }
        // A manual block cuts U:1 loose, and with it the unionid bridge.
        let blocked: HashSet<String> = ["U:1".to_string()].into();
        let (roots, _, _) = link(&nodes, &blocked, 4);
        assert_ne!(roots[0], roots[1]);
        assert_ne!(roots[1], roots[2]);
    }
}
