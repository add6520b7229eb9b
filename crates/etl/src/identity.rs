//! Step 5: deterministic identity resolution across the POS and the mini-program.
//!
//! Nodes are source ids (`M:<member_id>`, `U:<wx user_id>`). Edges, each with a named rule:
//! - `verified_phone`: the same phone, verified on both sides (SMS at the POS, WeChat's own
//!   number in the mini-program);
//! - `phone_single_match`: an unverified POS phone that matches exactly one verified id;
//! - `unionid`: two mini-program accounts with the same WeChat unionid;
//! - `member_card`: a mini-program user who bound their POS member card;
//! - `payer_id`: one payment account (WeChat Pay openid under the chain's app, Alipay user id)
//!   that a mini-program user pays with, or that paid a member's till orders on two different
//!   days or more (one day could be a companion paying once). The account's own anonymous till
//!   orders then resolve to the customer too (`customer_keys` row `PAY:<hash>`).
//!
//! Placeholder numbers never link; a phone, unionid or payment account shared by more than
//! `max_ids_per_phone` ids is treated as shared (a staff or family number) and blocked. Manual
//! blocks (`c360 identity unmerge`) cut a node loose. Components become customers; a customer
//! keeps its id across runs (the oldest id in the component wins) and every change of a node's
//! customer is written to the journal, which is what makes a merge reversible.

use std::collections::HashSet;
use std::sync::Arc;

use c360_db::{get_i64, get_text, Db};
use c360_metastore::Metastore;
use c360_model::parse_ts;
use c360_warehouse::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Int64Array, Int64Builder, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Txn};
use indicatif::ProgressBar;

use crate::config::EtlConfig;
use crate::error::Result;
use crate::extract::Ctx;

/// Every identity node, column by column, in natural key order (see [`natural_cmp`]): about
/// the bytes of its values a node (a struct of owned strings took ~0.9 KB, which at 2M nodes
/// was the whole step's memory). Rows stay in the order they were read; `at` maps a node's
/// index to its row, so sorting moves no values.
struct Nodes {
    at: Vec<u32>,
    key: StringArray,
    phone: StringArray,
    verified: Vec<bool>,
    unionid: StringArray,
    card: StringArray,
    bound_card: StringArray,
    phone_masked: StringArray,
    name_masked: StringArray,
    gender: StringArray,
    birth_year: Int64Array,
    store: Int64Array,
    created: StringArray,
    customer: Int64Array,
    payer: StringArray,
    /// Marketing consent, 2 bits per channel (wechat, sms, push): 0 never asked, 1 refused, 2
    /// granted; and when it was stated (Unix seconds, 0 unknown).
    consent: Vec<u8>,
    consent_at: Vec<i64>,
}

fn text(a: &StringArray, row: u32) -> Option<&str> {
    let row = row as usize;
    a.is_valid(row).then(|| a.value(row))
}

fn int(a: &Int64Array, row: u32) -> Option<i64> {
    let row = row as usize;
    a.is_valid(row).then(|| a.value(row))
}

impl Nodes {
    fn len(&self) -> usize {
        self.at.len()
    }
    fn key(&self, i: usize) -> &str {
        self.key.value(self.at[i] as usize)
    }
    fn phone(&self, i: usize) -> Option<&str> {
        text(&self.phone, self.at[i])
    }
    fn verified(&self, i: usize) -> bool {
        self.verified[self.at[i] as usize]
    }
    fn unionid(&self, i: usize) -> Option<&str> {
        text(&self.unionid, self.at[i])
    }
    fn card(&self, i: usize) -> Option<&str> {
        text(&self.card, self.at[i])
    }
    fn bound_card(&self, i: usize) -> Option<&str> {
        text(&self.bound_card, self.at[i])
    }
    fn phone_masked(&self, i: usize) -> Option<&str> {
        text(&self.phone_masked, self.at[i])
    }
    fn name_masked(&self, i: usize) -> Option<&str> {
        text(&self.name_masked, self.at[i])
    }
    fn gender(&self, i: usize) -> Option<&str> {
        text(&self.gender, self.at[i])
    }
    fn birth_year(&self, i: usize) -> Option<i64> {
        int(&self.birth_year, self.at[i])
    }
    fn store(&self, i: usize) -> Option<i64> {
        int(&self.store, self.at[i])
    }
    fn created(&self, i: usize) -> Option<&str> {
        text(&self.created, self.at[i])
    }
    fn customer(&self, i: usize) -> Option<i64> {
        int(&self.customer, self.at[i])
    }
    fn payer(&self, i: usize) -> Option<&str> {
        text(&self.payer, self.at[i])
    }
    /// Channel `ch`'s consent as this node states it (None: never asked) and when.
    fn consent(&self, i: usize, ch: usize) -> Option<(bool, i64)> {
        let row = self.at[i] as usize;
        match (self.consent[row] >> (2 * ch)) & 3 {
            0 => None,
            s => Some((s == 2, self.consent_at[row])),
        }
    }
    /// The index of the node with this key (nodes are in natural key order).
    fn find(&self, key: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match natural_cmp(self.key(mid), key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// One node as read.
struct NodeRow<'a> {
    key: &'a str,
    phone: Option<&'a str>,
    verified: bool,
    unionid: Option<&'a str>,
    card: Option<&'a str>,
    bound_card: Option<&'a str>,
    phone_masked: Option<&'a str>,
    name_masked: Option<&'a str>,
    gender: Option<&'a str>,
    birth_year: Option<i64>,
    store: Option<i64>,
    created: Option<&'a str>,
    customer: Option<i64>,
    payer: Option<&'a str>,
    /// Per channel (wechat, sms, push): granted, refused, or never asked.
    consent: [Option<bool>; 3],
    consent_at: Option<&'a str>,
}

#[derive(Default)]
struct NodesBuilder {
    key: StringBuilder,
    phone: StringBuilder,
    verified: Vec<bool>,
    unionid: StringBuilder,
    card: StringBuilder,
    bound_card: StringBuilder,
    phone_masked: StringBuilder,
    name_masked: StringBuilder,
    gender: StringBuilder,
    birth_year: Int64Builder,
    store: Int64Builder,
    created: StringBuilder,
    customer: Int64Builder,
    payer: StringBuilder,
    consent: Vec<u8>,
    consent_at: Vec<i64>,
}

impl NodesBuilder {
    fn push(&mut self, n: NodeRow<'_>) {
        self.key.append_value(n.key);
        self.phone.append_option(n.phone);
        self.verified.push(n.verified);
        self.unionid.append_option(n.unionid);
        self.card.append_option(n.card);
        self.bound_card.append_option(n.bound_card);
        self.phone_masked.append_option(n.phone_masked);
        self.name_masked.append_option(n.name_masked);
        self.gender.append_option(n.gender);
        self.birth_year.append_option(n.birth_year);
        self.store.append_option(n.store);
        self.created.append_option(n.created);
        self.customer.append_option(n.customer);
        self.payer.append_option(n.payer);
        let mut bits = 0u8;
        for (ch, c) in n.consent.iter().enumerate() {
            if let Some(g) = c {
                bits |= (if *g { 2 } else { 1 }) << (2 * ch);
            }
        }
        self.consent.push(bits);
        self.consent_at.push(
            n.consent_at
                .and_then(|t| parse_ts(t).ok())
                .map_or(0, |t| t.and_utc().timestamp()),
        );
    }

    fn finish(mut self) -> Nodes {
        let key = self.key.finish();
        let mut at: Vec<u32> = (0..key.len() as u32).collect();
        at.sort_unstable_by(|a, b| natural_cmp(key.value(*a as usize), key.value(*b as usize)));
        Nodes {
            at,
            key,
            phone: self.phone.finish(),
            verified: self.verified,
            unionid: self.unionid.finish(),
            card: self.card.finish(),
            bound_card: self.bound_card.finish(),
            phone_masked: self.phone_masked.finish(),
            name_masked: self.name_masked.finish(),
            gender: self.gender.finish(),
            birth_year: self.birth_year.finish(),
            store: self.store.finish(),
            created: self.created.finish(),
            customer: self.customer.finish(),
            payer: self.payer.finish(),
            consent: self.consent,
            consent_at: self.consent_at,
        }
    }
}

/// The rule that first linked a node into its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Own,
    VerifiedPhone,
    PhoneSingleMatch,
    Unionid,
    MemberCard,
    Payer,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Own => "self",
            Rule::VerifiedPhone => "verified_phone",
            Rule::PhoneSingleMatch => "phone_single_match",
            Rule::Unionid => "unionid",
            Rule::MemberCard => "member_card",
            Rule::Payer => "payer_id",
        }
    }
}

struct Dsu {
    p: Vec<u32>,
}
impl Dsu {
    fn find(&mut self, x: u32) -> u32 {
        let mut r = x;
        while self.p[r as usize] != r {
            r = self.p[r as usize];
        }
        let mut x = x;
        while self.p[x as usize] != r {
            let n = self.p[x as usize];
            self.p[x as usize] = r;
            x = n;
        }
        r
    }
    /// Joins the two sets under the smaller root, so a root is its set's smallest index.
    fn union(&mut self, a: u32, b: u32) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        self.p[hi as usize] = lo;
        true
    }
}

/// The live nodes with a value in `value`, grouped by it: groups in value order, a group's
/// nodes in index order (what a sorted map of vectors gave, in 4 bytes a node).
fn grouped<'a>(n: usize, live: &[bool], value: impl Fn(usize) -> Option<&'a str>) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n)
        .filter(|&i| live[i] && value(i).is_some())
        .map(|i| i as u32)
        .collect();
    v.sort_unstable_by(|a, b| value(*a as usize).cmp(&value(*b as usize)).then(a.cmp(b)));
    v
}

/// What [`link`] decided.
struct Linked {
    /// Per node index, its component root (the component's smallest index).
    roots: Vec<u32>,
    /// Per node index, the rule that first linked it.
    rule: Vec<Rule>,
    shared_phones: u64,
    shared_unions: u64,
    shared_payers: u64,
    /// Each payment account that names one customer, and a node of that customer.
    payers: Vec<(String, u32)>,
}

/// The linking decision, separated from I/O so it can be tested and evaluated on its own.
/// `paid` is till-payment evidence: (payer hash, node index) for an account that paid the
/// node's orders on two different days or more.
fn link(
    nodes: &Nodes,
    blocked: &HashSet<String>,
    max_per_key: usize,
    paid: &[(&str, u32)],
) -> Linked {
    let n = nodes.len();
    let mut d = Dsu {
        p: (0..n as u32).collect(),
    };
    let mut rule: Vec<Rule> = vec![Rule::Own; n];
    let live: Vec<bool> = (0..n).map(|i| !blocked.contains(nodes.key(i))).collect();
    let mark = |d: &mut Dsu, a: u32, b: u32, r: Rule, rule: &mut [Rule]| {
        if d.union(a, b) {
            for x in [b, a] {
                if rule[x as usize] == Rule::Own {
                    rule[x as usize] = r;
                }
            }
        }
    };
    let (mut shared_phones, mut shared_unions) = (0u64, 0u64);
    let phone = |i: usize| nodes.phone(i);
    let phones = grouped(n, &live, phone);
    for ids in phones.chunk_by(|a, b| phone(*a as usize) == phone(*b as usize)) {
        if ids.len() > max_per_key {
            shared_phones += 1;
            continue;
        }
        let verified: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|i| nodes.verified(*i as usize))
            .collect();
        for w in verified.windows(2) {
            mark(&mut d, w[0], w[1], Rule::VerifiedPhone, &mut rule);
        }
        if verified.len() == 1 {
            for u in ids.iter().filter(|i| !nodes.verified(**i as usize)) {
                mark(&mut d, verified[0], *u, Rule::PhoneSingleMatch, &mut rule);
            }
        }
    }
    drop(phones);
    let unionid = |i: usize| nodes.unionid(i);
    let unions = grouped(n, &live, unionid);
    for ids in unions.chunk_by(|a, b| unionid(*a as usize) == unionid(*b as usize)) {
        if ids.len() > max_per_key {
            shared_unions += 1;
            continue;
        }
        for w in ids.windows(2) {
            mark(&mut d, w[0], w[1], Rule::Unionid, &mut rule);
        }
    }
    drop(unions);
    let card = |i: usize| nodes.card(i);
    let cards = grouped(n, &live, card);
    for i in (0..n).filter(|&i| live[i]) {
        if let Some(bc) = nodes.bound_card(i) {
            let lo = cards.partition_point(|j| card(*j as usize) < Some(bc));
            let hi = cards.partition_point(|j| card(*j as usize) <= Some(bc));
            if hi - lo == 1 {
                mark(&mut d, i as u32, cards[lo], Rule::MemberCard, &mut rule);
            }
        }
    }
    // Payment accounts: a user's own (what the mini-program pays with) and the ones seen paying
    // a node's till orders on two days or more. An account naming more than `max_per_key` ids
    // is shared (a parent paying for the family, a staff account) and links nothing.
    let mut by_payer: Vec<(&str, u32)> = (0..n)
        .filter(|&i| live[i])
        .filter_map(|i| nodes.payer(i).map(|p| (p, i as u32)))
        .chain(paid.iter().copied().filter(|(_, i)| live[*i as usize]))
        .collect();
    by_payer.sort_unstable();
    by_payer.dedup();
    let mut shared_payers = 0u64;
    let mut payers = Vec::new();
    for group in by_payer.chunk_by(|a, b| a.0 == b.0) {
        if group.len() > max_per_key {
            shared_payers += 1;
            continue;
        }
        for w in group.windows(2) {
            mark(&mut d, w[0].1, w[1].1, Rule::Payer, &mut rule);
        }
        payers.push((group[0].0.to_string(), group[0].1));
    }
    drop(by_payer);
    let roots = (0..n as u32).map(|i| d.find(i)).collect();
    Linked {
        roots,
        rule,
        shared_phones,
        shared_unions,
        shared_payers,
        payers,
    }
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

/// Every identity node, streamed from the metastore a row at a time into columns.
async fn load_nodes(db: &Db) -> Result<Nodes> {
    use futures::TryStreamExt;
    let sql = "SELECT source_key, phone_hash, phone_verified, unionid_hash, card_no, bound_card_no, phone_masked, name_masked, \
             gender, birth_year, register_store_id, created_at, customer_id, payer_hash, \
             consent_wechat, consent_sms, consent_push, consent_at FROM identity_nodes";
    let mut b = NodesBuilder::default();
    let mut rows = c360_db::query(sql).fetch(&db.pool);
    while let Some(r) = rows.try_next().await.map_err(|e| c360_db::DbError::Sql {
        what: "identity_nodes".into(),
        source: e,
    })? {
        let r = &r;
        let t = |c: &str| get_text(r, c);
        let (key, phone, unionid, card, bound_card) = (
            t("source_key").unwrap_or_default(),
            t("phone_hash"),
            t("unionid_hash"),
            t("card_no"),
            t("bound_card_no"),
        );
        let (phone_masked, name_masked, gender, created, payer) = (
            t("phone_masked"),
            t("name_masked"),
            t("gender"),
            t("created_at"),
            t("payer_hash"),
        );
        let consent_at = t("consent_at");
        b.push(NodeRow {
            key: &key,
            phone: phone.as_deref(),
            verified: get_i64(r, "phone_verified").unwrap_or(0) == 1,
            unionid: unionid.as_deref(),
            card: card.as_deref(),
            bound_card: bound_card.as_deref(),
            phone_masked: phone_masked.as_deref(),
            name_masked: name_masked.as_deref(),
            gender: gender.as_deref(),
            birth_year: get_i64(r, "birth_year"),
            store: get_i64(r, "register_store_id"),
            created: created.as_deref(),
            customer: get_i64(r, "customer_id"),
            payer: payer.as_deref(),
            consent: ["consent_wechat", "consent_sms", "consent_push"]
                .map(|c| get_i64(r, c).map(|v| v != 0)),
            consent_at: consent_at.as_deref(),
        });
    }
    Ok(b.finish())
}

/// A component's first value of a node field (members in index order).
fn first<'a>(members: &[u32], f: impl Fn(usize) -> Option<&'a str>) -> Option<&'a str> {
    members.iter().find_map(|&i| f(i as usize))
}

/// Rows a batch of `customer_keys` and `customers` holds as they are written.
const WRITE_BATCH: usize = 65_536;

/// A component: its run of `members` (node indexes, ascending, the root first).
#[derive(Clone, Copy)]
struct Comp {
    start: u32,
    len: u32,
}

/// Till-payment evidence: the warehouse's `payer_links` merged with this run's (first and last
/// day an account was seen paying a member's or user's orders), written back whole. Returns
/// (payer hash, node index) for the pairs seen on two different days or more.
async fn payer_evidence(
    wh: &c360_warehouse::Warehouse,
    txn: &mut Txn,
    ctx: &mut Ctx,
    nodes: &Nodes,
) -> Result<Vec<(String, u32)>> {
    use std::collections::HashMap;
    let mut pairs: HashMap<(String, String), (i64, i64)> = HashMap::new();
    let has_base = txn
        .base()
        .tables
        .get("payer_links")
        .is_some_and(|t| !t.partitions.is_empty());
    if has_base {
        let sess = c360_warehouse::Session::at(wh, txn.base().clone()).await?;
        for b in sess
            .query("SELECT payer_hash, customer_key, first_day, last_day FROM payer_links")
            .await?
        {
            let s = |i: usize| b.column(i).as_any().downcast_ref::<StringArray>().cloned();
            let d = |i: usize| b.column(i).as_any().downcast_ref::<Int64Array>().cloned();
            let (Some(p), Some(k), Some(f), Some(l)) = (s(0), s(1), d(2), d(3)) else {
                continue;
            };
            for i in 0..b.num_rows() {
                pairs.insert(
                    (p.value(i).to_string(), k.value(i).to_string()),
                    (f.value(i), l.value(i)),
                );
            }
        }
    }
    for ((p, k), (f, l)) in std::mem::take(&mut ctx.payer_pairs) {
        let e = pairs.entry((p, k)).or_insert((f as i64, l as i64));
        e.0 = e.0.min(f as i64);
        e.1 = e.1.max(l as i64);
    }
    let mut rows: Vec<((String, String), (i64, i64))> = pairs.into_iter().collect();
    rows.sort_unstable();
    let mut f = txn.replace_start("payer_links")?;
    for chunk in rows.chunks(WRITE_BATCH) {
        let (mut p, mut k, mut a, mut z) = (
            StringBuilder::new(),
            StringBuilder::new(),
            Int64Builder::with_capacity(chunk.len()),
            Int64Builder::with_capacity(chunk.len()),
        );
        for ((ph, ck), (fd, ld)) in chunk {
            p.append_value(ph);
            k.append_value(ck);
            a.append_value(*fd);
            z.append_value(*ld);
        }
        f.write(&RecordBatch::try_new(
            tables::schema("payer_links"),
            vec![
                Arc::new(p.finish()),
                Arc::new(k.finish()),
                Arc::new(a.finish()),
                Arc::new(z.finish()),
            ],
        )?)?;
    }
    txn.replace_finish(f)?;
    Ok(rows
        .into_iter()
        .filter(|(_, (fd, ld))| ld > fd)
        .filter_map(|((p, k), _)| Some((p, nodes.find(&k)? as u32)))
        .collect())
}

pub async fn resolve(
    cfg: &EtlConfig,
    wh: &c360_warehouse::Warehouse,
    meta: &Metastore,
    txn: &mut Txn,
    ctx: &mut Ctx,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let nodes = load_nodes(&meta.db).await?;
    let n = nodes.len();
    let blocked: HashSet<String> = meta
        .db
        .fetch_all("SELECT source_key FROM identity_blocks")
        .await?
        .iter()
        .filter_map(|r| get_text(r, "source_key"))
        .collect();
    let paid = payer_evidence(wh, txn, ctx, &nodes).await?;
    let paid_refs: Vec<(&str, u32)> = paid.iter().map(|(p, i)| (p.as_str(), *i)).collect();
    let Linked {
        roots,
        rule,
        shared_phones,
        shared_unions,
        shared_payers,
        payers,
    } = link(&nodes, &blocked, cfg.max_ids_per_phone, &paid_refs);
    drop(paid_refs);
    drop(paid);
    // Components as runs of one sorted index: by root, then index (a root is its smallest).
    let mut members: Vec<u32> = (0..n as u32).collect();
    members.sort_unstable_by_key(|&i| ((roots[i as usize] as u64) << 32) | i as u64);
    let mut comps: Vec<Comp> = Vec::new();
    let mut start = 0u32;
    for run in members.chunk_by(|a, b| roots[*a as usize] == roots[*b as usize]) {
        comps.push(Comp {
            start,
            len: run.len() as u32,
        });
        start += run.len() as u32;
    }
    drop(roots);
    let of = |c: &Comp| &members[c.start as usize..(c.start + c.len) as usize];
    // Largest first (ties by smallest node index) so ids are claimed deterministically.
    comps.sort_unstable_by(|a, b| b.len.cmp(&a.len).then(of(a)[0].cmp(&of(b)[0])));
    // A component keeps its smallest old id no larger component claimed; the rest get new
    // ids past the largest old one (ids are minted from 1, so a negative one is never kept).
    let max_old = (0..n).filter_map(|i| nodes.customer(i)).max().unwrap_or(0);
    let mut claimed = vec![false; max_old.max(0) as usize + 1];
    let mut next_id = max_old + 1;
    let mut assign: Vec<i64> = vec![0; n];
    for c in &comps {
        let old = of(c)
            .iter()
            .filter_map(|&i| nodes.customer(i as usize))
            .filter(|&id| id >= 0 && !claimed[id as usize])
            .min();
        let id = match old {
            Some(id) => {
                claimed[id as usize] = true;
                id
            }
            None => {
                next_id += 1;
                next_id - 1
            }
        };
        for &i in of(c) {
            assign[i as usize] = id;
        }
    }
    drop(claimed);
    // The changes are staged; they reach the graph and its journal once the warehouse commit
    // carrying them (watermark `identity.run`) is published (`Metastore::settle_identity`).
    let changed = |i: &usize| nodes.customer(*i) != Some(assign[*i]);
    let moved = (0..n)
        .filter(|i| changed(i) && nodes.customer(*i).is_some())
        .count();
    let changes = (0..n)
        .filter(changed)
        .map(|i| c360_metastore::IdentityChange {
            source_key: nodes.key(i).to_string(),
            action: if nodes.customer(i).is_none() {
                "assign"
            } else {
                "move"
            },
            from_customer: nodes.customer(i),
            to_customer: assign[i],
            rule: rule[i].name(),
        });
    meta.stage_identity(run_id, changes).await?;
    txn.set_watermark(c360_metastore::IDENTITY_RUN_WATERMARK, run_id.to_string());
    ctx.merged_keys = n as u64 - comps.len() as u64;
    ctx.customers = comps.len() as u64;
    tracing::info!(
        nodes = n,
        customers = comps.len(),
        moved,
        shared_phones,
        shared_unionids = shared_unions,
        shared_payers,
        payers = payers.len(),
        "identity resolved"
    );

    // customer_keys and customers, written a batch at a time.
    let mut f = txn.replace_start("customer_keys")?;
    for lo in (0..n).step_by(WRITE_BATCH) {
        let hi = (lo + WRITE_BATCH).min(n);
        let (mut sk, mut cid, mut rl) = (
            StringBuilder::new(),
            Int64Builder::with_capacity(hi - lo),
            StringBuilder::new(),
        );
        for i in lo..hi {
            sk.append_value(nodes.key(i));
            cid.append_value(assign[i]);
            rl.append_value(rule[i].name());
        }
        f.write(&RecordBatch::try_new(
            tables::schema("customer_keys"),
            vec![
                Arc::new(sk.finish()),
                Arc::new(cid.finish()),
                Arc::new(rl.finish()),
            ],
        )?)?;
    }
    // The payment accounts that name one customer: their anonymous till orders are theirs.
    for chunk in payers.chunks(WRITE_BATCH) {
        let (mut sk, mut cid, mut rl) = (
            StringBuilder::new(),
            Int64Builder::with_capacity(chunk.len()),
            StringBuilder::new(),
        );
        for (p, node) in chunk {
            sk.append_value(format!("{}:{p}", crate::extract::PAYER_PREFIX));
            cid.append_value(assign[*node as usize]);
            rl.append_value(Rule::Payer.name());
        }
        f.write(&RecordBatch::try_new(
            tables::schema("customer_keys"),
            vec![
                Arc::new(sk.finish()),
                Arc::new(cid.finish()),
                Arc::new(rl.finish()),
            ],
        )?)?;
    }
    drop(payers);
    txn.replace_finish(f)?;
    drop(rule);

    comps.sort_unstable_by_key(|c| assign[of(c)[0] as usize]);
    let mut f = txn.replace_start("customers")?;
    let mut keys = String::new();
    for chunk in comps.chunks(WRITE_BATCH) {
        let mut b_id = Int64Builder::with_capacity(chunk.len());
        let mut b_ph = StringBuilder::new();
        let mut b_pm = StringBuilder::new();
        let mut b_nm = StringBuilder::new();
        let mut b_g = StringBuilder::new();
        let mut b_by = Int64Builder::with_capacity(chunk.len());
        let mut b_mc = Int64Builder::with_capacity(chunk.len());
        let mut b_wc = Int64Builder::with_capacity(chunk.len());
        let mut b_st = Int64Builder::with_capacity(chunk.len());
        let mut b_fs =
            TimestampMicrosecondBuilder::with_capacity(chunk.len()).with_timezone("+08:00");
        let mut b_keys = StringBuilder::new();
        let mut b_consent = [
            BooleanBuilder::with_capacity(chunk.len()),
            BooleanBuilder::with_capacity(chunk.len()),
            BooleanBuilder::with_capacity(chunk.len()),
        ];
        for c in chunk {
            let m = of(c);
            b_id.append_value(assign[m[0] as usize]);
            b_ph.append_option(first(m, |i| nodes.phone(i)));
            b_pm.append_option(first(m, |i| nodes.phone_masked(i)));
            b_nm.append_option(first(m, |i| nodes.name_masked(i)));
            b_g.append_option(first(m, |i| nodes.gender(i)));
            b_by.append_option(m.iter().find_map(|&i| nodes.birth_year(i as usize)));
            let pos = m
                .iter()
                .filter(|&&i| nodes.key(i as usize).starts_with("M:"))
                .count();
            let wx = m
                .iter()
                .filter(|&&i| nodes.key(i as usize).starts_with("U:"))
                .count();
            b_mc.append_value(pos as i64);
            b_wc.append_value(wx as i64);
            b_st.append_option(m.iter().find_map(|&i| nodes.store(i as usize)));
            b_fs.append_option(
                m.iter()
                    .filter_map(|&i| nodes.created(i as usize).and_then(|t| parse_ts(t).ok()))
                    .min()
                    .map(c360_model::ts_micros),
            );
            keys.clear();
            for (j, &i) in m.iter().enumerate() {
                if j > 0 {
                    keys.push(',');
                }
                keys.push_str(nodes.key(i as usize));
            }
            b_keys.append_value(&keys);
            // Per channel, the latest statement of any of the customer's rows wins (a refusal
            // on a tie): a withdrawal anywhere withdraws.
            for (ch, b) in b_consent.iter_mut().enumerate() {
                b.append_option(
                    m.iter()
                        .filter_map(|&i| nodes.consent(i as usize, ch))
                        .max_by_key(|&(granted, at)| (at, !granted))
                        .map(|(granted, _)| granted),
                );
            }
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
            Arc::new(b_consent[0].finish()),
            Arc::new(b_consent[1].finish()),
            Arc::new(b_consent[2].finish()),
        ];
        f.write(&RecordBatch::try_new(tables::schema("customers"), cols)?)?;
    }
    txn.replace_finish(f)?;
    Ok((n as u64, comps.len() as u64))
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

    /// A node with a key and nothing else, for a test to fill in the fields it is about.
    fn bare(key: &str) -> NodeRow<'_> {
        NodeRow {
            key,
            phone: None,
            verified: false,
            unionid: None,
            card: None,
            bound_card: None,
            phone_masked: None,
            name_masked: None,
            gender: None,
            birth_year: None,
            store: None,
            created: None,
            customer: None,
            payer: None,
            consent: [None; 3],
            consent_at: None,
        }
    }

    fn nodes(rows: &[(&str, Option<&str>, bool, Option<&str>)]) -> Nodes {
        let mut b = NodesBuilder::default();
        for (key, phone, verified, unionid) in rows {
            b.push(NodeRow {
                phone: *phone,
                verified: *verified,
                unionid: *unionid,
                ..bare(key)
            });
        }
        b.finish()
    }

    fn at(nodes: &Nodes, key: &str) -> usize {
        (0..nodes.len()).find(|i| nodes.key(*i) == key).unwrap()
    }

    #[test]
    fn links_by_rules_and_blocks_shared_numbers() {
        let mut rows = vec![
            ("M:1", Some("h1"), true, None),
            ("U:1", Some("h1"), true, Some("u1")),
            ("U:2", None, true, Some("u1")),
            ("M:2", Some("h2"), false, None), // unverified, no verified partner
            ("M:3", Some("h3"), false, None), // unverified, single verified match
            ("U:3", Some("h3"), true, None),
        ];
        // A staff number on 6 members.
        let staff: Vec<String> = (10..16).map(|i| format!("M:{i}")).collect();
        for k in &staff {
            rows.push((k.as_str(), Some("staff"), true, None));
        }
        let nodes = nodes(&rows);
        // Natural key order: M:1, M:2, M:3, M:10 … M:15, U:1, U:2, U:3.
        let keys: Vec<&str> = (0..nodes.len()).map(|i| nodes.key(i)).collect();
        assert_eq!(&keys[..4], ["M:1", "M:2", "M:3", "M:10"]);
        assert_eq!(&keys[9..], ["U:1", "U:2", "U:3"]);
        let k = |key| at(&nodes, key);
        let Linked {
            roots,
            rule,
            shared_phones,
            shared_unions,
            ..
        } = link(&nodes, &HashSet::new(), 4, &[]);
        let root = |key| roots[k(key)];
        assert_eq!(root("M:1"), root("U:1"));
        assert_eq!(root("U:1"), root("U:2"));
        assert_eq!(
            root("M:1"),
            k("M:1") as u32,
            "a root is its component's smallest index"
        );
        assert_eq!(rule[k("U:2")].name(), "unionid");
        assert_ne!(root("M:2"), root("M:1"));
        assert_eq!(root("M:3"), root("U:3"));
        assert_eq!(rule[k("M:3")].name(), "phone_single_match");
        for key in &staff {
            assert_eq!(
                root(key.as_str()),
                k(key.as_str()) as u32,
                "shared staff number must not link"
            );
        }
        assert_eq!((shared_phones, shared_unions), (1, 0));
        // A manual block cuts U:1 loose, and with it the unionid bridge.
        let blocked: HashSet<String> = ["U:1".to_string()].into();
        let roots = link(&nodes, &blocked, 4, &[]).roots;
        assert_ne!(roots[k("M:1")], roots[k("U:1")]);
        assert_ne!(roots[k("U:1")], roots[k("U:2")]);
    }

    #[test]
    fn payment_accounts_link_and_shared_ones_do_not() {
        let mut b = NodesBuilder::default();
        for (k, p) in [
            ("M:1", None),
            ("M:2", None),
            ("M:3", None),
            ("M:4", None),
            ("U:1", Some("wx-a")),
            ("U:2", Some("wx-family")),
        ] {
            b.push(NodeRow {
                payer: p,
                ..bare(k)
            });
        }
        let nodes = b.finish();
        let k = |key: &str| nodes.find(key).unwrap() as u32;
        let paid = [
            ("wx-a", k("M:1")),      // the user's own account paid member 1 on two days
            ("ali-b", k("M:2")),     // an Alipay account only ever seen with member 2
            ("wx-family", k("M:3")), // one account paying for three ids: shared
            ("wx-family", k("M:4")),
        ];
        let l = link(&nodes, &HashSet::new(), 2, &paid);
        assert_eq!(l.roots[k("M:1") as usize], l.roots[k("U:1") as usize]);
        assert_eq!(l.rule[k("U:1") as usize].name(), "payer_id");
        for key in ["M:3", "M:4", "U:2"] {
            assert_eq!(l.roots[k(key) as usize], k(key), "{key} stays alone");
        }
        assert_eq!(l.shared_payers, 1);
        let mut payers: Vec<(&str, u32)> = l
            .payers
            .iter()
            .map(|(p, i)| (p.as_str(), l.roots[*i as usize]))
            .collect();
        payers.sort();
        assert_eq!(payers, [("ali-b", k("M:2")), ("wx-a", k("M:1"))]);
        // A manually blocked user takes their account's evidence with them.
        let blocked: HashSet<String> = ["U:1".to_string()].into();
        let l = link(&nodes, &blocked, 2, &paid);
        assert_ne!(l.roots[k("M:1") as usize], l.roots[k("U:1") as usize]);
        assert!(l.payers.iter().any(|(p, i)| p == "wx-a" && *i == k("M:1")));
    }

    /// The sorted-index linking against the maps it replaced, on random graphs with shared
    /// phones, unionids, duplicate and dangling cards and blocks.
    #[test]
    fn links_as_the_map_version_did() {
        use std::collections::HashMap;
        fn reference(
            nodes: &Nodes,
            blocked: &HashSet<String>,
            max_per_key: usize,
        ) -> (Vec<u32>, Vec<Rule>) {
            let n = nodes.len();
            let mut d = Dsu {
                p: (0..n as u32).collect(),
            };
            let mut rule = vec![Rule::Own; n];
            let live = |i: usize| !blocked.contains(nodes.key(i));
            let mut by_phone: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut by_union: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut by_card: HashMap<&str, Vec<usize>> = HashMap::new();
            for i in (0..n).filter(|i| live(*i)) {
                if let Some(p) = nodes.phone(i) {
                    by_phone.entry(p).or_default().push(i);
                }
                if let Some(u) = nodes.unionid(i) {
                    by_union.entry(u).or_default().push(i);
                }
                if let Some(c) = nodes.card(i) {
                    by_card.entry(c).or_default().push(i);
                }
            }
            let mut mark = |d: &mut Dsu, a: usize, b: usize, r: Rule| {
                if d.union(a as u32, b as u32) {
                    for x in [b, a] {
                        if rule[x] == Rule::Own {
                            rule[x] = r;
                        }
                    }
                }
            };
            let mut phones: Vec<_> = by_phone.into_iter().collect();
            phones.sort();
            for (_, ids) in phones.into_iter().filter(|(_, v)| v.len() <= max_per_key) {
                let v: Vec<usize> = ids.iter().copied().filter(|i| nodes.verified(*i)).collect();
                for w in v.windows(2) {
                    mark(&mut d, w[0], w[1], Rule::VerifiedPhone);
                }
                if v.len() == 1 {
                    for u in ids.iter().copied().filter(|i| !nodes.verified(*i)) {
                        mark(&mut d, v[0], u, Rule::PhoneSingleMatch);
                    }
                }
            }
            let mut unions: Vec<_> = by_union.into_iter().collect();
            unions.sort();
            for (_, ids) in unions.into_iter().filter(|(_, v)| v.len() <= max_per_key) {
                for w in ids.windows(2) {
                    mark(&mut d, w[0], w[1], Rule::Unionid);
                }
            }
            for i in (0..n).filter(|i| live(*i)) {
                if let Some(ms) = nodes.bound_card(i).and_then(|bc| by_card.get(bc)) {
                    if ms.len() == 1 {
                        mark(&mut d, i, ms[0], Rule::MemberCard);
                    }
                }
            }
            ((0..n as u32).map(|i| d.find(i)).collect(), rule)
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..40 {
            let n = 20 + next(200) as usize;
            let span = 1 + n as u64 / 3;
            let mut b = NodesBuilder::default();
            let mut keys = Vec::new();
            for i in 0..n {
                let key = format!(
                    "{}:{}",
                    if next(2) == 0 { "M" } else { "U" },
                    next(5 * n as u64)
                );
                if keys.contains(&key) {
                    continue;
                }
                keys.push(key.clone());
                let some = |x: u64, p: &str| (x < span).then(|| format!("{p}{x}"));
                let (ph, un, cd, bc) = (
                    some(next(2 * span), "p"),
                    some(next(3 * span), "u"),
                    some(next(2 * span), "c"),
                    some(next(2 * span), "c"),
                );
                b.push(NodeRow {
                    phone: ph.as_deref(),
                    verified: next(3) > 0,
                    unionid: un.as_deref(),
                    card: cd.as_deref(),
                    bound_card: bc.as_deref(),
                    customer: Some(i as i64),
                    ..bare(&key)
                });
            }
            let nodes = b.finish();
            let blocked: HashSet<String> = keys.iter().filter(|_| next(10) == 0).cloned().collect();
            let max = 1 + next(4) as usize;
            let Linked { roots, rule, .. } = link(&nodes, &blocked, max, &[]);
            assert_eq!(
                (roots, rule),
                reference(&nodes, &blocked, max),
                "round {round}"
            );
        }
    }
}
