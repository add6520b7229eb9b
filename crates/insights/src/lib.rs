//! Insights: the seed's generateAIInsights — four sections (value, churn risk, marketing
//! suggestions, product strategy) written from a customer's computed facts only.
//!
//! This crate holds the fact sheet every writer is grounded in, the offline rule-based
//! writer used when no LLM is configured, and the LLM writer (`llm`) whose answers are checked
//! against the facts before anyone sees them. It is not the place where facts are computed (that is
//! analytics and the warehouse), and it never sees personal data: a [`Facts`] has no phone, name
//! or id beyond the customer number.

use serde::{Deserialize, Serialize};

pub mod llm;

/// Everything a writer may say about one customer. Numbers only come from here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Facts {
    pub customer_id: i64,
    pub tier: Option<String>,
    pub rfm_class: Option<String>,
    pub lifecycle: Option<String>,
    pub order_count: i64,
    pub total_spend_fen: i64,
    pub avg_order_fen: Option<i64>,
    pub recency_days: Option<i64>,
    pub p_alive: Option<f64>,
    pub p_churn_90d: Option<f64>,
    pub expected_purchases_365d: Option<f64>,
    pub clv_12m_fen: Option<f64>,
    pub value_growth: Option<f64>,
    pub wx_share: Option<f64>,
    pub favourite_daypart: Option<String>,
    /// (product name, share of the items they bought), most bought first.
    pub top_products: Vec<(String, f64)>,
    pub avg_rating: Option<f64>,
    pub review_count: i64,
    pub holiday_lift: Option<f64>,
    /// Mean review sentiment in [-1, 1] and per-aspect scores (口味, 服务, …) of their reviews.
    #[serde(default)]
    pub avg_sentiment: Option<f64>,
    #[serde(default)]
    pub aspect_scores: Vec<(String, f64)>,
    /// Share of networked customers this customer out-ranks in influence (PageRank), 0..1.
    #[serde(default)]
    pub influence_percentile: Option<f64>,
}

/// One insight section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Section {
    pub title: String,
    pub text: String,
}

/// The four sections, in the seed's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Insight {
    pub customer_id: i64,
    pub value: Section,
    pub churn_risk: Section,
    pub marketing: Section,
    pub product_strategy: Section,
    /// "rules" for the offline writer, else the model's name.
    pub writer: String,
}

fn yuan(fen: f64) -> String {
    format!("¥{:.0}", fen / 100.0)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A code the facts carry (tier, RFM class, daypart, aspect) in the writer's language, as the
/// dashboard words it (`web/src/labels.ts`; dayparts as `Daypart::zh` does); a code without a
/// word stays as it is.
fn word(code: &str, zh: bool) -> String {
    if let Some(d) = c360_model::Daypart::ALL
        .into_iter()
        .find(|d| d.code() == code)
    {
        return if zh {
            d.zh().into()
        } else {
            code.replace('_', " ")
        };
    }
    const WORDS: &[(&str, &str, &str)] = &[
        ("核心客户", "核心客户", "Core"),
        ("活跃客户", "活跃客户", "Active"),
        ("机会客户", "机会客户", "Opportunity"),
        ("沉睡/新客户", "沉睡/新客户", "Dormant / new"),
        ("重要价值客户", "重要价值客户", "Top value"),
        ("重要发展客户", "重要发展客户", "Top to develop"),
        ("重要保持客户", "重要保持客户", "Top to keep"),
        ("重要挽留客户", "重要挽留客户", "Top to win back"),
        ("一般价值客户", "一般价值客户", "Value"),
        ("一般发展客户", "一般发展客户", "To develop"),
        ("一般保持客户", "一般保持客户", "To keep"),
        ("一般挽留客户", "一般挽留客户", "To win back"),
        ("口味", "口味", "taste"),
        ("服务", "服务", "service"),
        ("价格", "价格", "price"),
        ("环境", "环境", "setting"),
        ("速度", "速度", "speed"),
        ("卫生", "卫生", "hygiene"),
    ];
    WORDS.iter().find(|w| w.0 == code).map_or_else(
        || code.to_string(),
        |w| (if zh { w.1 } else { w.2 }).to_string(),
    )
}

/// The offline writer: deterministic rules over the facts, in Chinese (`zh`) or English.
pub fn rule_based(f: &Facts, lang: &str) -> Insight {
    let zh = lang != "en";
    let tier = f
        .tier
        .as_deref()
        .map_or_else(|| "-".into(), |t| word(t, zh));
    let class = f
        .rfm_class
        .as_deref()
        .map_or_else(|| "-".into(), |c| word(c, zh));
    let value = {
        let mut t = if zh {
            format!(
                "{}（{}）：累计 {} 单、消费 {}",
                tier,
                class,
                f.order_count,
                yuan(f.total_spend_fen as f64)
            )
        } else {
            format!(
                "{} ({}): {} orders, {} spent in total",
                tier,
                class,
                f.order_count,
                yuan(f.total_spend_fen as f64)
            )
        };
        if let Some(a) = f.avg_order_fen {
            t += &if zh {
                format!("，客单价 {}", yuan(a as f64))
            } else {
                format!(", {} per order", yuan(a as f64))
            };
        }
        if let Some(c) = f.clv_12m_fen {
            t += &if zh {
                format!("；预计未来 12 个月价值 {}", yuan(c))
            } else {
                format!("; expected value over the next 12 months {}", yuan(c))
            };
        }
        if let Some(g) = f.value_growth {
            t += &if zh {
                format!(
                    "，较过去 12 个月{} {}",
                    if g >= 0.0 { "增长" } else { "下降" },
                    pct(g.abs())
                )
            } else {
                format!(
                    ", {} {} against the last 12 months",
                    if g >= 0.0 { "up" } else { "down" },
                    pct(g.abs())
                )
            };
        }
        t += if zh { "。" } else { "." };
        t
    };
    let churn = f.p_churn_90d.unwrap_or(f64::NAN);
    let risk_level = if churn.is_nan() {
        None
    } else if churn >= 0.7 {
        Some(if zh { "高" } else { "high" })
    } else if churn >= 0.4 {
        Some(if zh { "中" } else { "medium" })
    } else {
        Some(if zh { "低" } else { "low" })
    };
    let churn_risk = {
        let mut t = match risk_level {
            Some(l) if zh => format!("流失风险{l}：未来 90 天不再下单的概率 {}", pct(churn)),
            Some(l) => format!(
                "Churn risk {l}: {} chance of no order in the next 90 days",
                pct(churn)
            ),
            None if zh => "暂无流失预测。".into(),
            None => "No churn prediction yet.".into(),
        };
        if let Some(r) = f.recency_days {
            t += &if zh {
                format!("；距上次消费 {r} 天")
            } else {
                format!("; last order {r} days ago")
            };
        }
        if let (Some(p), Some(x)) = (f.p_alive, f.expected_purchases_365d) {
            t += &if zh {
                format!("；活跃概率 {}，预计一年内再购 {:.1} 次", pct(p), x)
            } else {
                format!(
                    "; P(alive) {}, {:.1} purchases expected in a year",
                    pct(p),
                    x
                )
            };
        }
        if risk_level.is_some() {
            t += if zh { "。" } else { "." };
        }
        t
    };
    let fav = f.top_products.first().map(|p| p.0.clone());
    let dp = f.favourite_daypart.as_deref().map(|d| word(d, zh));
    let marketing = {
        let high = churn >= 0.4;
        let mut t = match (high, zh) {
            (true, true) => "建议挽回：".to_string(),
            (true, false) => "Win back: ".to_string(),
            (false, true) => "建议维系：".to_string(),
            (false, false) => "Keep warm: ".to_string(),
        };
        t += &match (&fav, &dp, zh) {
            (Some(p), Some(d), true) => format!("在其常用时段（{d}）推送「{p}」优惠券"),
            (Some(p), Some(d), false) => {
                format!("send a coupon for {p} at their usual daypart ({d})")
            }
            (Some(p), None, true) => format!("推送「{p}」优惠券"),
            (Some(p), None, false) => format!("send a coupon for {p}"),
            (None, _, true) => "推送新品体验券".into(),
            (None, _, false) => "send a first-try coupon".into(),
        };
        if let Some(w) = f.wx_share {
            t += &if zh {
                format!("，渠道以{}为主", if w >= 0.5 { "小程序" } else { "门店" })
            } else {
                format!(
                    ", mainly through the {}",
                    if w >= 0.5 { "mini-program" } else { "store" }
                )
            };
        }
        if let Some(p) = f.influence_percentile.filter(|p| *p >= 0.9) {
            t += &if zh {
                format!("；社交影响力高于 {} 的客户，可作为分享活动种子", pct(p))
            } else {
                format!(
                    "; more influential than {} of customers: a seed for share campaigns",
                    pct(p)
                )
            };
        }
        if let Some(h) = f.holiday_lift.filter(|h| *h >= 1.3) {
            t += &if zh {
                format!("；节假日购买是平时的 {h:.1} 倍，宜在节前触达")
            } else {
                format!("; buys {h:.1}× more on holidays, so reach out before them")
            };
        }
        t += if zh { "。" } else { "." };
        t
    };
    let product_strategy = {
        let mut t = if f.top_products.is_empty() {
            if zh {
                "暂无商品偏好数据".to_string()
            } else {
                "No product preferences yet".to_string()
            }
        } else {
            let list: Vec<String> = f
                .top_products
                .iter()
                .take(3)
                .map(|(n, s)| format!("{n} {}", pct(*s)))
                .collect();
            if zh {
                format!("偏好：{}", list.join("、"))
            } else {
                format!("Prefers: {}", list.join(", "))
            }
        };
        if let Some(r) = f.avg_rating {
            t += &if zh {
                format!("；{} 条评价平均 {r:.1} 分", f.review_count)
            } else {
                format!("; {} reviews averaging {r:.1}", f.review_count)
            };
            // The weakest aspect their reviews name says what to fix; without aspects, the
            // rating alone points at taste and service.
            let weakest = f
                .aspect_scores
                .iter()
                .filter(|a| a.1 < 0.0)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match weakest {
                Some((a, v)) => {
                    let a = word(a, zh);
                    t += &if zh {
                        format!("，评价中「{a}」最差（{v:.2}），需改进")
                    } else {
                        format!(", and their reviews rate {a} worst ({v:.2}): fix it first")
                    };
                }
                None if r < 3.0 => {
                    t += if zh {
                        "，需关注口味与服务"
                    } else {
                        ", so check taste and service"
                    };
                }
                None => {}
            }
        }
        t += if zh { "。" } else { "." };
        t
    };
    let (tv, tc, tm, tp) = if zh {
        ("客户价值", "流失风险", "营销建议", "产品策略")
    } else {
        (
            "Value",
            "Churn risk",
            "Marketing suggestions",
            "Product strategy",
        )
    };
    Insight {
        customer_id: f.customer_id,
        value: Section {
            title: tv.into(),
            text: value,
        },
        churn_risk: Section {
            title: tc.into(),
            text: churn_risk,
        },
        marketing: Section {
            title: tm.into(),
            text: marketing,
        },
        product_strategy: Section {
            title: tp.into(),
            text: product_strategy,
        },
        writer: "rules".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            customer_id: 7,
            tier: Some("核心客户".into()),
            rfm_class: Some("重要价值客户".into()),
            order_count: 12,
            total_spend_fen: 36_000,
            avg_order_fen: Some(3_000),
            recency_days: Some(5),
            p_churn_90d: Some(0.82),
            p_alive: Some(0.4),
            expected_purchases_365d: Some(2.5),
            clv_12m_fen: Some(9_900.0),
            favourite_daypart: Some("lunch".into()),
            top_products: vec![("经典美式热狗".into(), 0.5)],
            ..Default::default()
        }
    }

    #[test]
    fn sections_state_the_facts_and_nothing_else() {
        let i = rule_based(&facts(), "zh");
        assert!(i.value.text.contains("12 单") && i.value.text.contains("¥360"));
        assert!(i.churn_risk.text.starts_with("流失风险高") && i.churn_risk.text.contains("82%"));
        assert!(i.marketing.text.contains("挽回") && i.marketing.text.contains("经典美式热狗"));
        let en = rule_based(&facts(), "en");
        assert!(en.churn_risk.text.starts_with("Churn risk high"));
        assert_eq!(en.value.title, "Value");
        let calm = rule_based(
            &Facts {
                p_churn_90d: Some(0.1),
                ..facts()
            },
            "en",
        );
        assert!(calm.marketing.text.starts_with("Keep warm"));
        // Review aspects and influence: the weakest aspect is named, a top influencer is a seed,
        // and the rule writer's own numbers pass the LLM writer's grounding check.
        let rich = Facts {
            avg_rating: Some(2.5),
            review_count: 4,
            aspect_scores: vec![("口味".into(), 0.4), ("速度".into(), -0.62)],
            influence_percentile: Some(0.97),
            ..facts()
        };
        let i = rule_based(&rich, "zh");
        assert!(
            i.product_strategy.text.contains("「速度」最差（-0.62）"),
            "{}",
            i.product_strategy.text
        );
        assert!(
            i.marketing.text.contains("高于 97%"),
            "{}",
            i.marketing.text
        );
        for s in [&i.value, &i.churn_risk, &i.marketing, &i.product_strategy] {
            assert!(llm::ungrounded(&s.text, &rich).is_empty(), "{}", s.text);
        }
        assert!(!rule_based(
            &Facts {
                influence_percentile: Some(0.5),
                ..rich
            },
            "en"
        )
        .marketing
        .text
        .contains("influential"));
    }
}
