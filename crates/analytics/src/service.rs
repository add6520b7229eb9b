//! Smart customer service: from a ticket's words and its context (the order, the store, the
//! customer's history), predict what went wrong — late order, wrong item, coupon failure or a
//! quality complaint — and recommend the solution and the compensation.
//!
//! The classifier is a multinomial logistic regression (softmax, AdaGrad, class-balanced) over
//! hashed character uni- and bigrams of the message plus named context features, trained on
//! tickets agents have closed with a cause. The resolution is a policy table scaled by the order's
//! value and the customer's worth and risk. Pure computation; the ETL and the server supply rows.

use std::collections::HashMap;

/// The causes, in the order of every probability vector here.
pub const CAUSES: [&str; 4] = [
    "late_order",
    "wrong_item",
    "coupon_failure",
    "quality_complaint",
];

/// Context features, in this order, in [`Case::context`].
pub const CONTEXT: [&str; 8] = [
    "delivery",
    "peak_daypart",
    "items",
    "coupon_used",
    "store_speed_negative",
    "store_quality_negative",
    "customer_tickets_before",
    "minutes_after_order",
];

const TEXT_DIM: usize = 1 << 14;
const K: usize = CAUSES.len();

/// One ticket as the model sees it.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub message: String,
    pub context: [f64; CONTEXT.len()],
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Sparse features of a case: hashed character unigrams and bigrams (Chinese needs no word
/// segmentation for this), then the context features after the text block.
fn features(c: &Case, scale: &[(f64, f64); CONTEXT.len()]) -> Vec<(usize, f64)> {
    let chars: Vec<char> = c
        .message
        .chars()
        .filter(|ch| !ch.is_whitespace() && !"，。！？,.!?、".contains(*ch))
        .collect();
    let mut f: HashMap<usize, f64> = HashMap::new();
    for (i, ch) in chars.iter().enumerate() {
        *f.entry(fnv(&ch.to_string()) as usize % TEXT_DIM)
            .or_default() += 0.5;
        if let Some(n) = chars.get(i + 1) {
            *f.entry(fnv(&format!("{ch}{n}")) as usize % TEXT_DIM)
                .or_default() += 1.0;
        }
    }
    let norm = f.values().map(|v| v * v).sum::<f64>().sqrt().max(1.0);
    let mut out: Vec<(usize, f64)> = f.into_iter().map(|(k, v)| (k, v / norm)).collect();
    out.sort_by_key(|x| x.0);
    for (j, v) in c.context.iter().enumerate() {
        let (m, s) = scale[j];
        out.push((TEXT_DIM + j, (v - m) / s));
    }
    out.push((TEXT_DIM + CONTEXT.len(), 1.0));
    out
}

/// The trained classifier.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    w: Vec<[f64; K]>,
    scale: [(f64, f64); CONTEXT.len()],
    pub trained_on: usize,
    pub class_counts: [usize; K],
}

fn softmax(z: [f64; K]) -> [f64; K] {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut e = [0.0; K];
    let mut s = 0.0;
    for k in 0..K {
        e[k] = (z[k] - m).exp();
        s += e[k];
    }
    e.map(|x| x / s)
}

impl ServiceModel {
    /// Trains on closed tickets. `labels` index [`CAUSES`].
    pub fn train(cases: &[Case], labels: &[usize], epochs: usize) -> ServiceModel {
        let n = cases.len().max(1) as f64;
        let mut scale = [(0.0, 1.0); CONTEXT.len()];
        for (j, sc) in scale.iter_mut().enumerate() {
            let m = cases.iter().map(|c| c.context[j]).sum::<f64>() / n;
            let v = cases
                .iter()
                .map(|c| (c.context[j] - m).powi(2))
                .sum::<f64>()
                / n;
            *sc = (m, v.sqrt().max(1e-6));
        }
        let dim = TEXT_DIM + CONTEXT.len() + 1;
        let mut w = vec![[0.0; K]; dim];
        let mut g2 = vec![[1e-8; K]; dim];
        let mut counts = [0usize; K];
        for l in labels {
            counts[*l] += 1;
        }
        let cw: [f64; K] = std::array::from_fn(|k| n / (K as f64 * counts[k].max(1) as f64));
        let feats: Vec<Vec<(usize, f64)>> = cases.iter().map(|c| features(c, &scale)).collect();
        let lr = 0.5;
        let l2 = 1e-4;
        // A fixed permutation per epoch (deterministic, no rng needed).
        let m = cases.len();
        for ep in 0..epochs {
            for s in 0..m {
                let i = (s * 7919 + ep * 104_729) % m;
                let f = &feats[i];
                let mut z = [0.0; K];
                for (j, v) in f {
                    for k in 0..K {
                        z[k] += w[*j][k] * v;
                    }
                }
                let p = softmax(z);
                for (j, v) in f {
                    for k in 0..K {
                        let y = (labels[i] == k) as u8 as f64;
                        let g = cw[labels[i]] * (p[k] - y) * v + l2 * w[*j][k];
                        g2[*j][k] += g * g;
                        w[*j][k] -= lr * g / g2[*j][k].sqrt();
                    }
                }
            }
        }
        ServiceModel {
            w,
            scale,
            trained_on: m,
            class_counts: counts,
        }
    }

    /// The training mean of each context feature: what to assume for a feature that is unknown
    /// (a message without an order), so it pushes no cause either way.
    pub fn mean_context(&self) -> [f64; CONTEXT.len()] {
        self.scale.map(|(m, _)| m)
    }

    /// Probability of each cause.
    pub fn predict(&self, c: &Case) -> [f64; K] {
        let mut z = [0.0; K];
        for (j, v) in features(c, &self.scale) {
            for (zk, wk) in z.iter_mut().zip(&self.w[j]) {
                *zk += wk * v;
            }
        }
        softmax(z)
    }

    /// The context features that pushed the predicted cause up the most (name, contribution).
    pub fn reasons(&self, c: &Case, cause: usize) -> Vec<(&'static str, f64)> {
        let mut r: Vec<(&'static str, f64)> = c
            .context
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let (m, s) = self.scale[j];
                (CONTEXT[j], self.w[TEXT_DIM + j][cause] * (v - m) / s)
            })
            .filter(|x| x.1 > 0.05)
            .collect();
        r.sort_by(|a, b| b.1.total_cmp(&a.1));
        r.truncate(3);
        r
    }
}

/// Index of the largest probability (the predicted cause); 0 for an empty slice.
pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |x| x.0)
}

/// The baseline a support team starts with: keyword rules on the message alone.
pub fn keyword_rule(message: &str) -> Option<usize> {
    const KW: [&[&str]; K] = [
        &["慢", "超时", "没到", "等了", "迟", "一小时", "骑手"],
        &["送错", "少了", "不是这个", "漏", "给错"],
        &["券", "优惠", "核销", "减"],
        &["凉", "硬", "头发", "味道", "没熟", "难吃"],
    ];
    KW.iter()
        .position(|ws| ws.iter().any(|w| message.contains(w)))
}

/// What to do about a ticket.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Resolution {
    pub cause: &'static str,
    pub solution_zh: String,
    pub solution_en: String,
    /// Coupon or refund value, in fen.
    pub compensation_fen: i64,
    /// coupon or refund.
    pub compensation_kind: &'static str,
    /// Escalate to a human (low confidence, or a high-value customer at risk).
    pub escalate: bool,
}

/// The customer as the policy weighs them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Standing {
    /// Paid amount of the order the ticket is about (fen), if known.
    pub order_paid_fen: Option<i64>,
    /// A high-value customer (an 重要… RFM class or top-tier CLV).
    pub high_value: bool,
    /// Churn probability from the churn model.
    pub churn_risk: f64,
}

/// The compensation policy: a base per cause from the order's value, 1.5× for high-value
/// customers and 1.3× more when churn risk is above one half, capped per cause.
pub fn resolve(cause: usize, confidence: f64, s: Standing) -> Resolution {
    let paid = s.order_paid_fen.unwrap_or(3000).max(0);
    let mult = if s.high_value { 1.5 } else { 1.0 } * if s.churn_risk > 0.5 { 1.3 } else { 1.0 };
    let scaled = |base: f64, lo: i64, hi: i64| ((base * mult).round() as i64).clamp(lo, hi);
    let (zh, en, comp, kind) = match cause {
        0 => (
            "致歉并说明延误原因；赠送下单无门槛券，下次外卖优先出餐",
            "Apologise and explain the delay; give a no-threshold coupon and prioritise their next delivery",
            scaled(paid as f64 * 0.2, 300, 1500),
            "coupon",
        ),
        1 => (
            "立即补送正确餐品或退还错漏餐品金额，并附小额补偿券",
            "Send the right item now or refund it, plus a small apology coupon",
            scaled(paid as f64 * 0.35 + 300.0, 500, 3000),
            "refund",
        ),
        2 => (
            "核实券状态后重新发放同面额优惠券（延长 7 天有效期），并补差价",
            "Check the coupon, reissue it at the same value with 7 more days, and refund the difference",
            scaled(500.0, 300, 2000),
            "coupon_reissue",
        ),
        _ => (
            "全额退款并通知门店品控复查；赠送招牌热狗券挽回体验",
            "Refund in full and have the store's quality lead review; add a signature hot dog coupon",
            scaled(paid as f64 + 500.0, 1000, 8000),
            "refund",
        ),
    };
    Resolution {
        cause: CAUSES[cause.min(K - 1)],
        solution_zh: zh.into(),
        solution_en: en.into(),
        compensation_fen: comp,
        compensation_kind: kind,
        escalate: confidence < 0.5 || (s.high_value && s.churn_risk > 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_words_and_context() {
        let mut cases = Vec::new();
        let mut labels = Vec::new();
        let words = ["外卖太慢了", "送错了", "优惠券用不了", "热狗是凉的"];
        for i in 0..800 {
            let k = i % 4;
            let mut ctx = [0.0; CONTEXT.len()];
            // Context that goes with a cause most of the time, not always.
            let often = i % 10 < 7;
            ctx[0] = ((k == 0 && often) || (k != 0 && i % 10 == 9)) as u8 as f64;
            ctx[3] = ((k == 2 && often) || (k != 2 && i % 10 == 9)) as u8 as f64;
            // Half the messages say nothing specific: only the context tells.
            let msg = if i % 8 < 4 {
                words[k].to_string()
            } else {
                "很不满意".to_string()
            };
            cases.push(Case {
                message: msg,
                context: ctx,
            });
            labels.push(k);
        }
        let m = ServiceModel::train(&cases, &labels, 5);
        let p = m.predict(&Case {
            message: "优惠券用不了".into(),
            context: [0.0; 8],
        });
        assert_eq!(argmax(&p), 2);
        let mut ctx = [0.0; 8];
        ctx[0] = 1.0;
        let p = m.predict(&Case {
            message: "很不满意".into(),
            context: ctx,
        });
        assert_eq!(argmax(&p), 0, "{p:?}");
        assert_eq!(
            m.reasons(
                &Case {
                    message: "很不满意".into(),
                    context: ctx
                },
                0
            )[0]
            .0,
            "delivery"
        );
    }

    #[test]
    fn compensation_scales_with_worth_and_risk() {
        let base = resolve(
            0,
            0.9,
            Standing {
                order_paid_fen: Some(4000),
                ..Default::default()
            },
        );
        let vip = resolve(
            0,
            0.9,
            Standing {
                order_paid_fen: Some(4000),
                high_value: true,
                churn_risk: 0.8,
            },
        );
        assert_eq!(base.compensation_fen, 800);
        assert_eq!(vip.compensation_fen, 1500); // 800 × 1.95 = 1560, capped at 1500
        assert!(vip.escalate && !base.escalate);
        assert!(resolve(3, 0.3, Standing::default()).escalate);
        assert_eq!(keyword_rule("领了券但结账没减"), Some(2));
        assert_eq!(keyword_rule("你们怎么回事"), None);
    }
}
