//! The checks a source order or order-item row must pass to be loaded, as pure functions of
//! the row's fields: a row either passes whole, or is quarantined naming its first bad field
//! and why. The steps in `extract` read the fields through the source contract (which already
//! quarantined values it could not read) and call these.

use std::collections::{HashMap, HashSet};

use c360_model::MAX_ORDER_FEN;
use chrono::NaiveDateTime;

/// The largest quantity of one product on one order line.
pub const MAX_QTY: i64 = 100;
/// The largest unit price, in fen (no single item costs more than a whole order may).
pub const MAX_UNIT_PRICE_FEN: i64 = MAX_ORDER_FEN;

/// An order row's checked fields, as the source contract read them (see `crate::contract`:
/// times, amounts and codes are already canonical; a value it could not read never gets here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOrder {
    pub status: Option<String>,
    pub order_time: Option<NaiveDateTime>,
    pub store_id: Option<i64>,
    pub total_fen: Option<i64>,
}

/// An order that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedOrder {
    pub status: String,
    pub time: NaiveDateTime,
    /// None only when the chain declares no stores.
    pub store: Option<i64>,
    pub total_fen: i64,
}

/// Why a row is not loaded: the field, and the reason in words.
pub type Refusal = (&'static str, String);

/// Checks an order row: a known status that counts (`paid`, `refunded`), a time, a store the
/// chain has (when it declares stores: `stores` is None when it does not), and a total in fen
/// within `0..=MAX_ORDER_FEN`.
pub fn check_order(
    r: &SourceOrder,
    stores: Option<&HashSet<i64>>,
) -> Result<CheckedOrder, Refusal> {
    let status = r.status.clone().unwrap_or_default();
    match status.as_str() {
        "paid" | "refunded" => {}
        "test" => return Err(("status", "test order: excluded from analytics".into())),
        "cancelled" => return Err(("status", "cancelled order: not a sale".into())),
        other => return Err(("status", format!("unknown status '{other}'"))),
    }
    let Some(time) = r.order_time else {
        return Err(("order_time", "missing".into()));
    };
    let store = match stores {
        Some(known) => match r.store_id.filter(|s| known.contains(s)) {
            Some(s) => Some(s),
            None => return Err(("store_id", format!("unknown store {:?}", r.store_id))),
        },
        None => r.store_id,
    };
    let total_fen = match r.total_fen {
        Some(f) if (0..=MAX_ORDER_FEN).contains(&f) => f,
        Some(f) if f < 0 => return Err(("total", format!("{f} fen is negative"))),
        Some(f) => {
            return Err((
                "total",
                format!("{f} is over the largest order total, {MAX_ORDER_FEN} fen"),
            ))
        }
        None => return Err(("total", "missing".into())),
    };
    Ok(CheckedOrder {
        status,
        time,
        store,
        total_fen,
    })
}

/// An order-item row's checked fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceItem {
    pub order_id: Option<i64>,
    pub product_id: Option<i64>,
    pub qty: Option<i64>,
    pub unit_price_fen: Option<i64>,
}

/// An item that passed; `qty * price` cannot overflow.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedItem {
    pub order: i64,
    pub product: i64,
    pub qty: i64,
    pub price: i64,
}

/// Checks an item row: a product the chain sells (when it declares products: `products` is
/// None when it does not), a quantity in `1..=MAX_QTY`, a unit price in
/// `0..=MAX_UNIT_PRICE_FEN`, and its order's id.
pub fn check_item<V>(
    r: &SourceItem,
    products: Option<&HashMap<i64, V>>,
) -> Result<CheckedItem, Refusal> {
    let product = match (r.product_id, products) {
        (Some(p), Some(known)) if known.contains_key(&p) => p,
        (Some(p), None) => p,
        _ => return Err(("product_id", format!("unknown product {:?}", r.product_id))),
    };
    let qty = r.qty.unwrap_or(0);
    if !(1..=MAX_QTY).contains(&qty) {
        return Err(("qty", format!("quantity {qty} outside 1..={MAX_QTY}")));
    }
    let price = match r.unit_price_fen {
        Some(p) if (0..=MAX_UNIT_PRICE_FEN).contains(&p) => p,
        Some(p) => {
            return Err((
                "unit_price",
                format!("{p} is not in 0..={MAX_UNIT_PRICE_FEN} fen"),
            ))
        }
        None => return Err(("unit_price", "missing".into())),
    };
    let Some(order) = r.order_id else {
        return Err(("order_id", "missing".into()));
    };
    Ok(CheckedItem {
        order,
        product,
        qty,
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text a source column might hold for a time: well-formed in the accepted layouts, or not.
    fn time_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                2000i32..2100,
                1u32..=12,
                1u32..=28,
                0u32..24,
                0u32..60,
                0u32..60
            )
                .prop_map(|(y, mo, d, h, mi, s)| format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"
                )),
            (2000i32..2100, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60)
                .prop_map(|(y, mo, d, h, mi)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00")),
            (2000i32..2100, 0u32..=14, 0u32..=35)
                .prop_map(|(y, mo, d)| format!("{y:04}-{mo:02}-{d:02} 12:00:00")),
            "\\PC{0,24}",
        ]
    }

    fn amount_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (0i64..=MAX_ORDER_FEN * 2).prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            (0i64..100_000, 0u32..100).prop_map(|(y, f)| format!("{y}.{f:02}")),
            " *[0-9]{1,8} *",
            "\\PC{0,12}",
        ]
    }

    fn status_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("paid".to_string()),
            Just("refunded".to_string()),
            Just("test".to_string()),
            Just("cancelled".to_string()),
            Just("PAID".to_string()),
            "\\PC{0,10}",
        ]
    }

    /// A source row as text, the way the simulator's contract reads it (text times, fen).
    #[derive(Debug, Clone)]
    struct TextOrder {
        status: Option<String>,
        order_time: Option<String>,
        store_id: Option<i64>,
        total_fen: Option<String>,
    }

    fn source_order() -> impl Strategy<Value = TextOrder> {
        (
            proptest::option::weighted(0.9, status_text()),
            proptest::option::weighted(0.9, time_text()),
            proptest::option::weighted(0.9, -2i64..12),
            proptest::option::weighted(0.9, amount_text()),
        )
            .prop_map(|(status, order_time, store_id, total_fen)| TextOrder {
                status,
                order_time,
                store_id,
                total_fen,
            })
    }

    /// What the contract makes of a text field: its value, or None when it is empty or could
    /// not be read (such a row is quarantined before `check_order`, naming that field).
    fn read(kind: crate::contract::Kind, v: &Option<String>) -> Option<crate::contract::Cell> {
        let plan = crate::contract::FieldPlan {
            spec: crate::contract::FieldSpec {
                name: "f",
                kind,
                required: true,
            },
            origin: crate::contract::Origin::Column("f".into()),
            time_format: crate::contract::TimeFormat::Text,
            zone: chrono_tz::Asia::Shanghai,
            money: crate::contract::Money::Fen,
            codes: Default::default(),
        };
        v.as_ref()
            .map(|t| plan.convert(crate::contract::Raw::Text(t.as_str().into())))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// A row passes exactly when every field is valid on its own, and then carries those
        /// values; otherwise the refusal names the first field (in the check order) that is not.
        #[test]
        fn an_order_row_passes_whole_or_names_its_first_bad_field(t in source_order()) {
            use crate::contract::{Cell, Kind};
            let stores: HashSet<i64> = (1..=8).collect();
            let time = match read(Kind::Time, &t.order_time) { Some(Cell::Time(v)) => Some(v), _ => None };
            let total = match read(Kind::Money, &t.total_fen) { Some(Cell::Int(v)) => Some(v), _ => None };
            let r = SourceOrder { status: t.status.clone(), order_time: time, store_id: t.store_id, total_fen: total };
            let status_ok = matches!(t.status.as_deref(), Some("paid" | "refunded"));
            let time = t.order_time.as_deref().map(c360_model::parse_ts).and_then(|t| t.ok());
            let store_ok = t.store_id.is_some_and(|s| stores.contains(&s));
            let total = t.total_fen.as_deref().map(c360_model::Fen::parse).and_then(|f| f.ok()).map(|f| f.0)
                .or_else(|| t.total_fen.as_deref().and_then(|v| v.trim().parse::<i64>().ok()));
            let total_ok = total.is_some_and(|t| (0..=MAX_ORDER_FEN).contains(&t));
            match check_order(&r, Some(&stores)) {
                Ok(c) => {
                    prop_assert!(status_ok && store_ok && total_ok);
                    prop_assert_eq!(Some(c.time), time);
                    prop_assert_eq!(c.store, t.store_id);
                    prop_assert_eq!(Some(c.total_fen), total);
                    prop_assert_eq!(Some(c.status), t.status.clone());
                }
                Err((field, reason)) => {
                    prop_assert!(!reason.is_empty());
                    let first_bad = if !status_ok { "status" }
                        else if time.is_none() { "order_time" }
                        else if !store_ok { "store_id" }
                        else { prop_assert!(!total_ok); "total" };
                    prop_assert_eq!(field, first_bad);
                }
            }
            // Without declared stores the store is not checked and passes as given.
            if let Ok(c) = check_order(&r, None) {
                prop_assert_eq!(c.store, t.store_id);
            }
        }

        /// An item passes exactly when each field is in its domain; what passes can be priced
        /// (`qty * price`, and a thousand such lines summed) without overflow.
        #[test]
        fn an_item_row_passes_whole_or_names_its_first_bad_field(
            order_id in proptest::option::weighted(0.95, any::<i64>()),
            product_id in proptest::option::weighted(0.95, -1i64..6),
            qty in proptest::option::weighted(0.95, prop_oneof![-5i64..120, any::<i64>()]),
            unit_price_fen in proptest::option::weighted(0.95, prop_oneof![-10i64..5_000, any::<i64>()]),
        ) {
            let products: HashMap<i64, ()> = (1..=4).map(|p| (p, ())).collect();
            let r = SourceItem { order_id, product_id, qty, unit_price_fen };
            match check_item(&r, Some(&products)) {
                Ok(c) => {
                    prop_assert!(products.contains_key(&c.product));
                    prop_assert!((1..=MAX_QTY).contains(&c.qty));
                    prop_assert!((0..=MAX_UNIT_PRICE_FEN).contains(&c.price));
                    prop_assert_eq!(Some(c.order), order_id);
                    let line = c.qty.checked_mul(c.price);
                    prop_assert!(line.and_then(|l| l.checked_mul(1_000)).is_some());
                }
                Err((field, _)) => {
                    let first_bad = if !product_id.is_some_and(|p| products.contains_key(&p)) { "product_id" }
                        else if !(1..=MAX_QTY).contains(&qty.unwrap_or(0)) { "qty" }
                        else if !unit_price_fen.is_some_and(|p| (0..=MAX_UNIT_PRICE_FEN).contains(&p)) { "unit_price" }
                        else { "order_id" };
                    prop_assert_eq!(field, first_bad);
                }
            }
        }
    }
}
