//! The simulated chain's data in another chain's layout: the same rows in a schema of other
//! names and types, as a real POS and mini-program might keep them — amounts in yuan DECIMAL,
//! times as Unix seconds, integer status and channel codes, members keyed by their card number,
//! coupon redemptions in a table of their own, and no shares table. `examples/chain.toml` is
//! the source contract that reads it; the ETL's contract test builds the warehouse from both
//! layouts of one simulation and requires them equal.
//!
//! Values the typed schema cannot hold are written as a real system would: a malformed time as
//! 0 (a sentinel the contract refuses), an empty one as NULL.

use c360_db::{get_f64, get_i64, get_text, Db, Value};
use chrono::TimeZone;

use crate::SimError;

/// DDL of the other POS (`sale`, `vip`, `goods` …).
pub const POS_DDL: &str = "
CREATE TABLE city (id BIGINT PRIMARY KEY, city_name VARCHAR(32) NOT NULL, province VARCHAR(32), city_tier SMALLINT, latitude DOUBLE PRECISION, longitude DOUBLE PRECISION);
CREATE TABLE shop (shop_id BIGINT PRIMARY KEY, shop_no VARCHAR(16), shop_name VARCHAR(64), city BIGINT, kind VARCHAR(16), latitude DOUBLE PRECISION, longitude DOUBLE PRECISION, opened DATE, state VARCHAR(16));
CREATE TABLE goods (goods_id BIGINT PRIMARY KEY, goods_sn VARCHAR(16), goods_name VARCHAR(64), cat VARCHAR(16), price DECIMAL(10,2), launch DATE, cost_price DECIMAL(10,2));
CREATE TABLE vip (card_no VARCHAR(32) PRIMARY KEY, mobile VARCHAR(32), mobile_ok SMALLINT, real_name VARCHAR(32), sex VARCHAR(4), birth DATE, reg_shop BIGINT, reg_time BIGINT, modified BIGINT, sms_ok CHAR(1), agree_time BIGINT);
CREATE TABLE sale (sale_id BIGINT PRIMARY KEY, sale_no VARCHAR(32), shop_id BIGINT, vip_card VARCHAR(32), sale_time BIGINT, amount DECIMAL(12,2), discount DECIMAL(12,2), pay_type SMALLINT, state SMALLINT, modified BIGINT, pay_account VARCHAR(64));
CREATE TABLE sale_coupon (sale_id BIGINT PRIMARY KEY, code VARCHAR(32), modified BIGINT);
CREATE TABLE sale_line (line_id BIGINT PRIMARY KEY, sale_id BIGINT, goods_id BIGINT, num INT, price DECIMAL(10,2), modified BIGINT);
CREATE INDEX ix_sale_mod ON sale(modified);
CREATE INDEX ix_line_mod ON sale_line(modified);
CREATE INDEX ix_vip_mod ON vip(modified)
";

/// DDL of the other mini-program (`mp_*`; it keeps no shares).
pub const WX_DDL: &str = "
CREATE TABLE mp_user (uid BIGINT PRIMARY KEY, open_id VARCHAR(64) NOT NULL, union_id VARCHAR(64), mobile VARCHAR(32), card_no VARCHAR(32), nick VARCHAR(64), created BIGINT, modified BIGINT, msg_ok CHAR(1), push_ok CHAR(1), agree_time BIGINT);
CREATE TABLE mp_order (oid BIGINT PRIMARY KEY, order_sn VARCHAR(32), uid BIGINT, shop_id BIGINT, created BIGINT, pay_amount DECIMAL(12,2), discount DECIMAL(12,2), fulfil SMALLINT, state SMALLINT, coupon VARCHAR(32), modified BIGINT);
CREATE TABLE mp_order_line (id BIGINT PRIMARY KEY, oid BIGINT, goods_id BIGINT, num INT, price DECIMAL(10,2), modified BIGINT);
CREATE TABLE mp_track (id BIGINT PRIMARY KEY, uid BIGINT, sid VARCHAR(32), act VARCHAR(16), page VARCHAR(32), ts BIGINT, device VARCHAR(16), latitude DOUBLE PRECISION, longitude DOUBLE PRECISION);
CREATE TABLE mp_comment (id BIGINT PRIMARY KEY, uid BIGINT, oid BIGINT, shop_id BIGINT, star SMALLINT, body VARCHAR(500), created BIGINT);
CREATE TABLE mp_group_member (id BIGINT PRIMARY KEY, group_no VARCHAR(32), oid BIGINT, uid BIGINT, joined BIGINT);
CREATE TABLE mp_pay_for (id BIGINT PRIMARY KEY, oid BIGINT, uid BIGINT, payer BIGINT, paid BIGINT);
CREATE TABLE mp_ticket (id BIGINT PRIMARY KEY, uid BIGINT, oid BIGINT, created BIGINT, msg VARCHAR(500), state SMALLINT, cause VARCHAR(32), modified BIGINT);
CREATE INDEX ix_mpo_mod ON mp_order(modified);
CREATE INDEX ix_mpl_mod ON mp_order_line(modified);
CREATE INDEX ix_mpu_mod ON mp_user(modified)
";

/// The card number the simulated POS gives member `id` (see `gen::pos_order`).
pub fn card_of(member_id: i64) -> String {
    format!("C{:010}", member_id * 7 + 1_000_000_000)
}

/// Order status codes of the other systems.
pub const STATUS_CODES: [(&str, i64); 4] =
    [("paid", 1), ("refunded", 2), ("cancelled", 3), ("test", 9)];
pub const PAY_CODES: [(&str, i64); 4] =
    [("wechat_pay", 1), ("alipay", 2), ("cash", 3), ("card", 4)];
pub const FULFIL_CODES: [(&str, i64); 2] = [("pickup", 1), ("delivery", 2)];

/// A yes/no flag as this layout keeps it: 'Y' or 'N', NULL when never asked.
fn yn(v: Option<i64>) -> Value {
    match v {
        Some(1) => Value::S("Y".into()),
        Some(_) => Value::S("N".into()),
        None => Value::NullS,
    }
}

fn code(table: &[(&str, i64)], v: Option<String>) -> Value {
    match v {
        None => Value::NullI,
        Some(v) => table
            .iter()
            .find(|(k, _)| *k == v)
            .map_or(Value::I(99), |(_, c)| Value::I(*c)),
    }
}

/// A simulator time (Asia/Shanghai wall time as text) as Unix seconds: NULL when empty, 0 when
/// it is not a time at all.
fn unix(v: Option<String>) -> Value {
    match v.as_deref().map(str::trim) {
        None | Some("") => Value::NullI,
        Some(t) => match c360_model::parse_ts(t) {
            Ok(n) => chrono_tz::Asia::Shanghai
                .from_local_datetime(&n)
                .single()
                .map_or(Value::I(0), |t| Value::I(t.timestamp())),
            Err(_) => Value::I(0),
        },
    }
}

/// Fen as a yuan decimal's text.
fn yuan(v: Option<i64>) -> Value {
    match v {
        None => Value::NullS,
        Some(f) => Value::S(format!(
            "{}{}.{:02}",
            if f < 0 { "-" } else { "" },
            (f / 100).abs(),
            (f % 100).abs()
        )),
    }
}

fn date(v: Option<String>) -> Value {
    match v.as_deref().map(str::trim) {
        Some(t) if c360_model::parse_date(t).is_ok() => Value::S(t.to_string()),
        _ => Value::NullS,
    }
}

fn int(r: &sqlx::any::AnyRow, c: &str) -> Value {
    get_i64(r, c).map_or(Value::NullI, Value::I)
}
fn text(r: &sqlx::any::AnyRow, c: &str) -> Value {
    get_text(r, c).map_or(Value::NullS, Value::S)
}
fn float(r: &sqlx::any::AnyRow, c: &str) -> Value {
    get_f64(r, c).map_or(Value::NullF, Value::F)
}

/// Inserts rows with a cast per column where the column's type needs one for a bound text
/// (`DATE`, `DECIMAL`), many rows a statement.
async fn insert(
    db: &Db,
    table: &str,
    cols: &[(&str, &str)],
    rows: &[Vec<Value>],
) -> Result<(), SimError> {
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    for chunk in rows.chunks(400) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
        let mut args = Vec::with_capacity(chunk.len() * cols.len());
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for (j, (v, (_, cast))) in row.iter().zip(cols).enumerate() {
                if j > 0 {
                    sql.push(',');
                }
                if cast.is_empty() {
                    sql.push('?');
                } else {
                    sql.push_str(&format!("CAST(? AS {cast})"));
                }
                args.push(v.clone());
            }
            sql.push(')');
        }
        db.execute(&sql, &args).await?;
    }
    Ok(())
}

/// Writes the simulated sources (`pos`, `wx`, in the simulator's layout) into `pos_out` and
/// `wx_out` in the other layout. The targets are emptied first.
pub async fn relayout(pos: &Db, wx: &Db, pos_out: &Db, wx_out: &Db) -> Result<(), SimError> {
    for (db, ddl, tables) in [
        (
            pos_out,
            POS_DDL,
            &[
                "sale_line",
                "sale_coupon",
                "sale",
                "vip",
                "goods",
                "shop",
                "city",
            ][..],
        ),
        (
            wx_out,
            WX_DDL,
            &[
                "mp_ticket",
                "mp_pay_for",
                "mp_group_member",
                "mp_comment",
                "mp_track",
                "mp_order_line",
                "mp_order",
                "mp_user",
            ][..],
        ),
    ] {
        for t in tables {
            let _ = db.exec(&format!("DROP TABLE IF EXISTS {t}")).await;
        }
        db.exec_script(ddl).await?;
    }
    let all = |db: &Db, sql: &'static str| {
        let db = db.clone();
        async move { db.fetch_all(sql).await }
    };

    let rows = all(pos, "SELECT * FROM cities ORDER BY city_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "city_id"),
                text(r, "name"),
                text(r, "province"),
                int(r, "tier"),
                float(r, "lat"),
                float(r, "lon"),
            ]
        })
        .collect();
    insert(
        pos_out,
        "city",
        &[
            ("id", ""),
            ("city_name", ""),
            ("province", ""),
            ("city_tier", ""),
            ("latitude", ""),
            ("longitude", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(pos, "SELECT * FROM stores ORDER BY store_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "store_id"),
                text(r, "store_code"),
                text(r, "name"),
                int(r, "city_id"),
                text(r, "store_type"),
                float(r, "lat"),
                float(r, "lon"),
                date(get_text(r, "open_date")),
                text(r, "status"),
            ]
        })
        .collect();
    insert(
        pos_out,
        "shop",
        &[
            ("shop_id", ""),
            ("shop_no", ""),
            ("shop_name", ""),
            ("city", ""),
            ("kind", ""),
            ("latitude", ""),
            ("longitude", ""),
            ("opened", "DATE"),
            ("state", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(pos, "SELECT * FROM products ORDER BY product_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "product_id"),
                text(r, "sku"),
                text(r, "name"),
                text(r, "category"),
                yuan(get_i64(r, "price_fen")),
                date(get_text(r, "launched")),
                yuan(get_i64(r, "cost_fen")),
            ]
        })
        .collect();
    insert(
        pos_out,
        "goods",
        &[
            ("goods_id", ""),
            ("goods_sn", ""),
            ("goods_name", ""),
            ("cat", ""),
            ("price", "DECIMAL(10,2)"),
            ("launch", "DATE"),
            ("cost_price", "DECIMAL(10,2)"),
        ],
        &out,
    )
    .await?;

    let rows = all(pos, "SELECT * FROM members ORDER BY member_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                get_i64(r, "member_id").map_or(Value::NullS, |m| Value::S(card_of(m))),
                text(r, "phone"),
                int(r, "phone_verified"),
                text(r, "name"),
                text(r, "gender"),
                date(get_text(r, "birthday")),
                int(r, "register_store_id"),
                unix(get_text(r, "created_at")),
                unix(get_text(r, "updated_at")),
                yn(get_i64(r, "sms_consent")),
                unix(get_text(r, "consent_at")),
            ]
        })
        .collect();
    insert(
        pos_out,
        "vip",
        &[
            ("card_no", ""),
            ("mobile", ""),
            ("mobile_ok", ""),
            ("real_name", ""),
            ("sex", ""),
            ("birth", "DATE"),
            ("reg_shop", ""),
            ("reg_time", ""),
            ("modified", ""),
            ("sms_ok", ""),
            ("agree_time", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(pos, "SELECT * FROM orders ORDER BY order_id").await?;
    let mut sales = Vec::new();
    let mut coupons = Vec::new();
    for r in &rows {
        let id = int(r, "order_id");
        sales.push(vec![
            id.clone(),
            text(r, "order_no"),
            int(r, "store_id"),
            get_i64(r, "member_id").map_or(Value::NullS, |m| Value::S(card_of(m))),
            unix(get_text(r, "order_time")),
            yuan(get_i64(r, "total_fen")),
            yuan(get_i64(r, "discount_fen")),
            code(&PAY_CODES, get_text(r, "pay_method")),
            code(&STATUS_CODES, get_text(r, "status")),
            unix(get_text(r, "updated_at")),
            text(r, "payer_id"),
        ]);
        if let Some(c) = get_text(r, "coupon_code").filter(|c| !c.is_empty()) {
            coupons.push(vec![id, Value::S(c), unix(get_text(r, "updated_at"))]);
        }
    }
    insert(
        pos_out,
        "sale",
        &[
            ("sale_id", ""),
            ("sale_no", ""),
            ("shop_id", ""),
            ("vip_card", ""),
            ("sale_time", ""),
            ("amount", "DECIMAL(12,2)"),
            ("discount", "DECIMAL(12,2)"),
            ("pay_type", ""),
            ("state", ""),
            ("modified", ""),
            ("pay_account", ""),
        ],
        &sales,
    )
    .await?;
    insert(
        pos_out,
        "sale_coupon",
        &[("sale_id", ""), ("code", ""), ("modified", "")],
        &coupons,
    )
    .await?;

    let rows = all(pos, "SELECT * FROM order_items ORDER BY item_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "item_id"),
                int(r, "order_id"),
                int(r, "product_id"),
                int(r, "qty"),
                yuan(get_i64(r, "unit_price_fen")),
                unix(get_text(r, "updated_at")),
            ]
        })
        .collect();
    insert(
        pos_out,
        "sale_line",
        &[
            ("line_id", ""),
            ("sale_id", ""),
            ("goods_id", ""),
            ("num", ""),
            ("price", "DECIMAL(10,2)"),
            ("modified", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_users ORDER BY user_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "user_id"),
                text(r, "openid"),
                text(r, "unionid"),
                text(r, "phone"),
                text(r, "member_card_no"),
                text(r, "nickname"),
                unix(get_text(r, "created_at")),
                unix(get_text(r, "updated_at")),
                yn(get_i64(r, "subscribe_consent")),
                yn(get_i64(r, "push_consent")),
                unix(get_text(r, "consent_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_user",
        &[
            ("uid", ""),
            ("open_id", ""),
            ("union_id", ""),
            ("mobile", ""),
            ("card_no", ""),
            ("nick", ""),
            ("created", ""),
            ("modified", ""),
            ("msg_ok", ""),
            ("push_ok", ""),
            ("agree_time", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_orders ORDER BY order_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "order_id"),
                text(r, "order_no"),
                int(r, "user_id"),
                int(r, "store_id"),
                unix(get_text(r, "order_time")),
                yuan(get_i64(r, "total_fen")),
                yuan(get_i64(r, "discount_fen")),
                code(&FULFIL_CODES, get_text(r, "channel")),
                code(&STATUS_CODES, get_text(r, "status")),
                text(r, "coupon_code"),
                unix(get_text(r, "updated_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_order",
        &[
            ("oid", ""),
            ("order_sn", ""),
            ("uid", ""),
            ("shop_id", ""),
            ("created", ""),
            ("pay_amount", "DECIMAL(12,2)"),
            ("discount", "DECIMAL(12,2)"),
            ("fulfil", ""),
            ("state", ""),
            ("coupon", ""),
            ("modified", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_order_items ORDER BY item_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "item_id"),
                int(r, "order_id"),
                int(r, "product_id"),
                int(r, "qty"),
                yuan(get_i64(r, "unit_price_fen")),
                unix(get_text(r, "updated_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_order_line",
        &[
            ("id", ""),
            ("oid", ""),
            ("goods_id", ""),
            ("num", ""),
            ("price", "DECIMAL(10,2)"),
            ("modified", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_events ORDER BY event_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "event_id"),
                int(r, "user_id"),
                text(r, "session_id"),
                text(r, "event_type"),
                text(r, "page"),
                unix(get_text(r, "event_time")),
                text(r, "device"),
                float(r, "lat"),
                float(r, "lon"),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_track",
        &[
            ("id", ""),
            ("uid", ""),
            ("sid", ""),
            ("act", ""),
            ("page", ""),
            ("ts", ""),
            ("device", ""),
            ("latitude", ""),
            ("longitude", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_reviews ORDER BY review_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "review_id"),
                int(r, "user_id"),
                int(r, "order_id"),
                int(r, "store_id"),
                int(r, "rating"),
                text(r, "content"),
                unix(get_text(r, "created_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_comment",
        &[
            ("id", ""),
            ("uid", ""),
            ("oid", ""),
            ("shop_id", ""),
            ("star", ""),
            ("body", ""),
            ("created", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_order_groups ORDER BY row_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "row_id"),
                text(r, "group_id"),
                int(r, "order_id"),
                int(r, "user_id"),
                unix(get_text(r, "joined_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_group_member",
        &[
            ("id", ""),
            ("group_no", ""),
            ("oid", ""),
            ("uid", ""),
            ("joined", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_paid_by ORDER BY row_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "row_id"),
                int(r, "order_id"),
                int(r, "user_id"),
                int(r, "payer_user_id"),
                unix(get_text(r, "paid_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_pay_for",
        &[
            ("id", ""),
            ("oid", ""),
            ("uid", ""),
            ("payer", ""),
            ("paid", ""),
        ],
        &out,
    )
    .await?;

    let rows = all(wx, "SELECT * FROM wx_service_tickets ORDER BY ticket_id").await?;
    let out: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                int(r, "ticket_id"),
                int(r, "user_id"),
                int(r, "order_id"),
                unix(get_text(r, "created_at")),
                text(r, "message"),
                match get_text(r, "status").as_deref() {
                    Some("open") => Value::I(0),
                    Some("closed") => Value::I(1),
                    _ => Value::I(7),
                },
                text(r, "resolved_cause"),
                unix(get_text(r, "updated_at")),
            ]
        })
        .collect();
    insert(
        wx_out,
        "mp_ticket",
        &[
            ("id", ""),
            ("uid", ""),
            ("oid", ""),
            ("created", ""),
            ("msg", ""),
            ("state", ""),
            ("cause", ""),
            ("modified", ""),
        ],
        &out,
    )
    .await?;
    Ok(())
}
