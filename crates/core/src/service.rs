//! Customer-service tickets as cases for [`c360_analytics::service`]: each ticket's message with
//! the context the warehouse knows — the order (delivery, daypart, basket, coupon), the store's
//! review sentiment on speed and on taste and hygiene as of the ticket (reviews written before
//! it), and the customer's earlier tickets — and the diagnosis model trained on the tickets
//! agents closed. (Its score against the simulator's true causes is in `c360-eval`.)

use c360_analytics::service::{Case, ServiceModel, CAUSES, CONTEXT};
use c360_warehouse::Session;

use crate::cols::{col_f64, col_i64, col_str};
use crate::CoreResult as Result;

/// One ticket with its context.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub ticket_key: String,
    pub customer_id: Option<i64>,
    pub order_key: Option<String>,
    pub order_paid_fen: Option<i64>,
    pub store_id: Option<i64>,
    pub status: String,
    pub resolved_cause: Option<usize>,
    pub case: Case,
}

/// Which tickets to read.
#[derive(Debug, Clone, Copy)]
pub enum TicketFilter<'a> {
    All,
    /// One ticket by its key (`T:12`).
    Key(&'a str),
    /// Tickets in one state (`open`, `closed`).
    Status(&'a str),
}

/// The SQL behind every ticket's context; `filter` is a fixed condition with a `$1` the value
/// is bound to.
fn cases_sql(filter: &str) -> String {
    format!(
        "WITH it AS (SELECT order_id, SUM(qty) AS items FROM order_items GROUP BY order_id), \
         t AS (SELECT ticket_key, customer_id, order_key, created_at, message, status, resolved_cause, \
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at, ticket_key) - 1 AS before \
           FROM service_tickets), \
         st AS (SELECT t.ticket_key, \
           AVG(CASE WHEN r.speed IS NULL THEN NULL WHEN r.speed < 0 THEN 1.0 ELSE 0.0 END) AS speed_neg, \
           AVG(CASE WHEN r.taste IS NULL AND r.hygiene IS NULL THEN NULL \
                    WHEN COALESCE(r.taste, 0) + COALESCE(r.hygiene, 0) < 0 THEN 1.0 ELSE 0.0 END) AS quality_neg \
           FROM t JOIN orders so ON so.order_id = t.order_key \
           JOIN review_sentiment r ON r.store_id = so.store_id AND r.created_at < t.created_at \
           GROUP BY t.ticket_key) \
         SELECT t.ticket_key, t.customer_id, t.order_key, t.message, t.status, t.resolved_cause, \
           o.total_fen, o.store_id, \
           CASE WHEN o.channel = 'delivery' THEN 1.0 ELSE 0.0 END, \
           CASE WHEN o.daypart IN ('lunch', 'dinner') THEN 1.0 ELSE 0.0 END, \
           CAST(COALESCE(it.items, 0) AS DOUBLE), \
           CASE WHEN o.coupon_code IS NULL THEN 0.0 ELSE 1.0 END, \
           COALESCE(st.speed_neg, 0.2), COALESCE(st.quality_neg, 0.2), CAST(t.before AS DOUBLE), \
           CASE WHEN o.order_time IS NULL THEN 0.0 ELSE \
             CAST(CAST(t.created_at AS BIGINT) - CAST(o.order_time AS BIGINT) AS DOUBLE) / 60000000.0 END \
         FROM t LEFT JOIN orders o ON o.order_id = t.order_key \
         LEFT JOIN it ON it.order_id = t.order_key \
         LEFT JOIN st ON st.ticket_key = t.ticket_key \
         WHERE 1 = 1 {filter} ORDER BY t.ticket_key"
    )
}

/// The tickets `filter` keeps, with their context.
pub async fn tickets(sess: &Session, filter: TicketFilter<'_>) -> Result<Vec<Ticket>> {
    use c360_warehouse::query::ScalarValue;
    let text = |v: &str| vec![ScalarValue::Utf8(Some(v.to_string()))];
    let (cond, params) = match filter {
        TicketFilter::All => ("", vec![]),
        TicketFilter::Key(k) => (" AND t.ticket_key = $1", text(k)),
        TicketFilter::Status(st) => (" AND t.status = $1", text(st)),
    };
    let mut out = Vec::new();
    for b in sess.query_with(&cases_sql(cond), params).await? {
        let key = col_str(&b, 0)?;
        let cust = col_i64(&b, 1)?;
        let ord = col_str(&b, 2)?;
        let msg = col_str(&b, 3)?;
        let status = col_str(&b, 4)?;
        let cause = col_str(&b, 5)?;
        let paid = col_i64(&b, 6)?;
        let store = col_i64(&b, 7)?;
        let ctx: Vec<Vec<Option<f64>>> = (0..CONTEXT.len())
            .map(|j| col_f64(&b, 8 + j))
            .collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            out.push(Ticket {
                ticket_key: key[r].clone().unwrap_or_default(),
                customer_id: cust[r],
                order_key: ord[r].clone(),
                order_paid_fen: paid[r],
                store_id: store[r],
                status: status[r].clone().unwrap_or_default(),
                resolved_cause: cause[r]
                    .as_deref()
                    .and_then(|c| CAUSES.iter().position(|x| *x == c)),
                case: Case {
                    message: msg[r].clone().unwrap_or_default(),
                    context: std::array::from_fn(|j| ctx[j][r].unwrap_or(0.0)),
                },
            });
        }
    }
    Ok(out)
}

/// Trains the diagnosis model on every closed ticket.
pub fn train(tickets: &[Ticket]) -> ServiceModel {
    let (cases, labels): (Vec<Case>, Vec<usize>) = tickets
        .iter()
        .filter_map(|t| Some((t.case.clone(), t.resolved_cause?)))
        .unzip();
    ServiceModel::train(&cases, &labels, EPOCHS)
}

/// Passes over the closed tickets when training.
pub const EPOCHS: usize = 20;
