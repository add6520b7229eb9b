//! Source contracts: one simulation written in the simulator's layout (read by
//! `examples/sim.toml`) and in another chain's (`c360_sim::layout`: other names, yuan DECIMAL,
//! Unix seconds, integer codes, members keyed by card number, coupon redemptions apart, no
//! shares; read by `examples/chain.toml`) on MariaDB and on PostgreSQL must give the same
//! warehouse — table by table, row by row, the member keys aside (`M:<member_id>` in one,
//! `M:<card_no>` in the other).

use std::collections::{BTreeMap, BTreeSet};

use c360_etl::contract::{Contract, EntityDef};
use c360_warehouse::arrow::util::display::array_value_to_string;

use super::*;

const MARIADB: &str = "mysql://root@127.0.0.1:3306";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

fn chain_contract() -> Contract {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/chain.toml"
    ))
    .unwrap();
    Contract::from_toml(&text).unwrap()
}

/// `M:<member_id>` written as the other layout keys the member: `M:<card_no>`.
fn as_card(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary && s[i..].starts_with("M:") {
            let digits: String = s[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                out.push_str("M:");
                out.push_str(&c360_sim::layout::card_of(digits.parse().unwrap()));
                i += 2 + digits.len();
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Every table's rows as text, sorted; `translate` rewrites member keys. The quarantine is
/// returned apart, as (entity, row, field) -> reason.
async fn dump(
    wh: &Path,
    translate: bool,
) -> (
    BTreeMap<String, Vec<String>>,
    BTreeMap<(String, String, String), String>,
) {
    let s = session(wh).await;
    let mut tables = BTreeMap::new();
    let mut quarantine = BTreeMap::new();
    for t in c360_warehouse::tables::TABLES {
        let batches = s.query(&format!("SELECT * FROM {}", t.name)).await.unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        let v = array_value_to_string(c, r).unwrap();
                        if translate {
                            as_card(&v)
                        } else {
                            v
                        }
                    })
                    .collect();
                if t.name == "quarantine" {
                    // key, table, row, field, reason, value, run, month
                    let mut row = cells[2].clone();
                    if translate && cells[1] == "members" {
                        row = c360_sim::layout::card_of(row.parse().unwrap());
                    }
                    quarantine.insert((cells[1].clone(), row, cells[3].clone()), cells[4].clone());
                } else {
                    rows.push(cells.join(" | "));
                }
            }
        }
        rows.sort();
        tables.insert(t.name.to_string(), rows);
    }
    (tables, quarantine)
}

async fn same_warehouse(server: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 4_000, 31);
    c360_sim::simulate(&sim).await.unwrap();

    // The simulator's layout, read by its contract, without shares (the other chain has none).
    let mut sim_contract = Contract::simulator();
    sim_contract.entities.insert(
        "shares".into(),
        EntityDef {
            absent: true,
            ..Default::default()
        },
    );
    let wh_a = dir.path().join("a");
    let mut a = etl_cfg(&sim, wh_a.clone());
    a.contract = Some(sim_contract);
    // One hashing secret for both (each metastore would generate its own).
    a.salt = Some(c360_model::Secret::new("contract-test-secret".to_string()));
    run(&a).await;

    // The same rows in the other chain's layout on the server.
    let pos_url = format!("{server}/c360_it_chain_pos_{tag}");
    let wx_url = format!("{server}/c360_it_chain_mp_{tag}");
    for u in [&pos_url, &wx_url] {
        c360_db::reset_database(u).await.unwrap();
    }
    let open = |u: String| async move { c360_db::Db::connect(&u).await.unwrap() };
    let (pos, wx) = (
        open(sim.pos_url.clone()).await,
        open(sim.wx_url.clone()).await,
    );
    let (pos_out, wx_out) = (open(pos_url.clone()).await, open(wx_url.clone()).await);
    c360_sim::layout::relayout(&pos, &wx, &pos_out, &wx_out)
        .await
        .unwrap();
    let wh_b = dir.path().join("b");
    let mut b = etl_cfg(&sim, wh_b.clone());
    b.pos_url = pos_url.clone();
    b.wx_url = wx_url.clone();
    b.contract = Some(chain_contract());
    b.salt = a.salt.clone();
    // Tables keyed by integers read in slices of 700 keys; members (keyed by card) whole.
    b.source_slice = 700;
    let rb = run(&b).await;
    assert!(rb.steps.iter().any(|s| s.name == "orders" && s.loaded > 0));

    let (ta, qa) = dump(&wh_a, true).await;
    let (tb, qb) = dump(&wh_b, false).await;
    let mut compared = 0;
    for (t, rows_a) in &ta {
        let rows_b = &tb[t];
        if rows_a != rows_b {
            let only_a: Vec<_> = rows_a
                .iter()
                .filter(|r| !rows_b.contains(r))
                .take(3)
                .collect();
            let only_b: Vec<_> = rows_b
                .iter()
                .filter(|r| !rows_a.contains(r))
                .take(3)
                .collect();
            panic!(
                "{t}: {} rows from the simulator's layout, {} from the other; only in the first: {only_a:#?}; only in the second: {only_b:#?}",
                rows_a.len(),
                rows_b.len()
            );
        }
        compared += rows_a.len();
    }
    assert!(
        ta["fact_orders"].len() > 1000 && compared > 10_000,
        "{compared}"
    );
    assert!(
        ta["customer_shares_raw"].is_empty(),
        "shares are absent in both"
    );

    // The same rows refused, for the same fields; the reasons differ only where the typed
    // schema could not hold the simulator's malformed text (a time written as 0).
    let ka: BTreeSet<_> = qa.keys().collect();
    let kb: BTreeSet<_> = qb.keys().collect();
    assert_eq!(ka, kb, "quarantined (entity, row, field)");
    for (k, ra) in &qa {
        let rb = &qb[k];
        if ra != rb {
            assert!(
                k.2.ends_with("_time") || k.2.ends_with("_at"),
                "{k:?}: {ra:?} / {rb:?}"
            );
        }
    }

    // A rerun over the other layout changes nothing (but the report of what the run itself
    // read: only the rows at the watermarks, again).
    run(&b).await;
    let again = dump(&wh_b, false).await.0;
    let this_run = |r: &&String| !r.starts_with("run:");
    for (t, rows) in &tb {
        let (x, y): (Vec<_>, Vec<_>) = (
            rows.iter().filter(this_run).collect(),
            again[t].iter().filter(this_run).collect(),
        );
        if x != y {
            let gone: Vec<_> = rows
                .iter()
                .filter(|r| !again[t].contains(r))
                .take(3)
                .collect();
            let new: Vec<_> = again[t]
                .iter()
                .filter(|r| !rows.contains(r))
                .take(3)
                .collect();
            panic!(
                "{t} changed on a rerun: {} -> {} rows; gone {gone:#?}; new {new:#?}",
                rows.len(),
                again[t].len()
            );
        }
    }
    for d in [pos, wx, pos_out, wx_out] {
        d.close().await;
    }
    for u in [&pos_url, &wx_url] {
        c360_db::reset_database(u).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_chains_layout_on_mariadb_builds_the_same_warehouse() {
    same_warehouse(MARIADB, "my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_chains_layout_on_postgres_builds_the_same_warehouse() {
    same_warehouse(POSTGRES, "pg").await;
}
