//! RFM scoring: quintile scores, the common named segments, the Chinese eight value classes and
//! the chain's four tiers.
//!
//! Scores (1–5, higher is better: recent, frequent, big spenders) come from cut points. Cut
//! points are either fixed (set by the business) or dynamic: learned as quintiles of the
//! customers' values, globally or separately per group (city or store), so a customer is
//! compared with the customers of their own city or store — RFM normalised per group.
//!
//! Tie rule: a score is the number of cut points the value reaches, so equal values always get
//! the same score (unlike SQL NTILE, which splits ties by row order); quintile groups can
//! therefore be uneven when many customers share a value (e.g. frequency 1).
//!
//! Eight classes: each of R, F, M is "high" when its *score* is above the mean score of the
//! customers in the same group ([`HighRule::MeanScore`], default) or when its *value* is above
//! the group's mean value ([`HighRule::MeanValue`]; for recency, below the mean).
//!
//! Because the cut points are kept, a new order re-scores its customer immediately
//! ([`RfmModel::score`]) without recomputing any quantile.

use std::collections::HashMap;

use c360_model::{RfmClass, Tier};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RfmValues {
    pub recency_days: f64,
    pub frequency: f64,
    pub monetary: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HighRule {
    MeanScore,
    MeanValue,
}

/// Cut points (ascending, 4 each) and means for one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cuts {
    pub recency: [f64; 4],
    pub frequency: [f64; 4],
    pub monetary: [f64; 4],
    pub mean: RfmValues,
    pub mean_score: [f64; 3],
    pub customers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RfmModel {
    pub global: Cuts,
    /// Per-group cut points (dynamic thresholds); groups with fewer than `min_group`
    /// customers use the global ones.
    pub groups: HashMap<String, Cuts>,
    pub rule: HighRule,
}

/// A customer's R, F and M quintiles (1–5), their named segment, class and tier.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RfmScore {
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: &'static str,
    pub class: RfmClass,
    pub tier: Tier,
}

fn quintile_cuts(mut v: Vec<f64>) -> [f64; 4] {
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        if v.is_empty() {
            return 0.0;
        }
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    [q(0.2), q(0.4), q(0.6), q(0.8)]
}

/// Score 1..=5: 1 + the number of cut points strictly below the value (ties land together).
fn score(c: &[f64; 4], v: f64) -> u8 {
    1 + c.iter().filter(|t| v > **t).count() as u8
}

impl Cuts {
    pub fn learn(rows: &[RfmValues]) -> Cuts {
        let n = rows.len().max(1) as f64;
        let mean = RfmValues {
            recency_days: rows.iter().map(|r| r.recency_days).sum::<f64>() / n,
            frequency: rows.iter().map(|r| r.frequency).sum::<f64>() / n,
            monetary: rows.iter().map(|r| r.monetary).sum::<f64>() / n,
        };
        // Recency is scored on its negation so that recent = high.
        let mut c = Cuts {
            recency: quintile_cuts(rows.iter().map(|r| -r.recency_days).collect()),
            frequency: quintile_cuts(rows.iter().map(|r| r.frequency).collect()),
            monetary: quintile_cuts(rows.iter().map(|r| r.monetary).collect()),
            mean,
            mean_score: [0.0; 3],
            customers: rows.len(),
        };
        let mut ms = [0.0; 3];
        for r in rows {
            let (a, b, d) = c.scores(r);
            ms[0] += a as f64 / n;
            ms[1] += b as f64 / n;
            ms[2] += d as f64 / n;
        }
        c.mean_score = ms;
        c
    }

    /// Fixed, business-set thresholds (ascending cut points; recency in days ascending = worse).
    pub fn fixed(recency_days: [f64; 4], frequency: [f64; 4], monetary: [f64; 4]) -> Cuts {
        let neg = [
            -recency_days[3],
            -recency_days[2],
            -recency_days[1],
            -recency_days[0],
        ];
        Cuts {
            recency: neg,
            frequency,
            monetary,
            mean: RfmValues {
                recency_days: recency_days[1],
                frequency: frequency[1],
                monetary: monetary[1],
            },
            mean_score: [3.0; 3],
            customers: 0,
        }
    }

    fn scores(&self, v: &RfmValues) -> (u8, u8, u8) {
        (
            score(&self.recency, -v.recency_days),
            score(&self.frequency, v.frequency),
            score(&self.monetary, v.monetary),
        )
    }
}

/// The common named segments from R and the mean of F and M.
pub fn named_segment(r: u8, f: u8, m: u8) -> &'static str {
    let fm = (f as f64 + m as f64) / 2.0;
    match (r, fm) {
        (5, x) if x >= 4.0 => "Champions",
        (3..=5, x) if x >= 3.0 => "Loyal",
        (4..=5, x) if x >= 1.5 => "Potential Loyalist",
        (5, _) => "New Customers",
        (4, _) => "Promising",
        (3, _) => "Need Attention",
        (1..=2, x) if x >= 4.0 => "Can't Lose Them",
        (2, x) if x >= 2.5 => "At Risk",
        (2, _) => "Hibernating",
        _ => "Lost",
    }
}

/// The chain's four tiers.
pub fn tier(r: u8, f: u8, m: u8) -> Tier {
    if r >= 4 && f >= 4 && m >= 4 {
        Tier::Core
    } else if r >= 3 && f >= 3 {
        Tier::Active
    } else if r >= 3 || m >= 4 {
        Tier::Opportunity
    } else {
        Tier::DormantOrNew
    }
}

impl RfmModel {
    /// Learns cut points globally and per group (`group[i]` for `rows[i]`; None = no group).
    pub fn learn(
        rows: &[RfmValues],
        group: &[Option<String>],
        min_group: usize,
        rule: HighRule,
    ) -> RfmModel {
        let global = Cuts::learn(rows);
        let mut by: HashMap<String, Vec<RfmValues>> = HashMap::new();
        for (r, g) in rows.iter().zip(group) {
            if let Some(g) = g {
                by.entry(g.clone()).or_default().push(*r);
            }
        }
        let groups = by
            .into_iter()
            .filter(|(_, v)| v.len() >= min_group)
            .map(|(g, v)| (g, Cuts::learn(&v)))
            .collect();
        RfmModel {
            global,
            groups,
            rule,
        }
    }

    pub fn with_fixed(cuts: Cuts, rule: HighRule) -> RfmModel {
        RfmModel {
            global: cuts,
            groups: HashMap::new(),
            rule,
        }
    }

    pub fn score(&self, v: &RfmValues, group: Option<&str>) -> RfmScore {
        let c = group
            .and_then(|g| self.groups.get(g))
            .unwrap_or(&self.global);
        let (r, f, m) = c.scores(v);
        let (rh, fh, mh) = match self.rule {
            HighRule::MeanScore => (
                r as f64 > c.mean_score[0],
                f as f64 > c.mean_score[1],
                m as f64 > c.mean_score[2],
            ),
            HighRule::MeanValue => (
                v.recency_days < c.mean.recency_days,
                v.frequency > c.mean.frequency,
                v.monetary > c.mean.monetary,
            ),
        };
        RfmScore {
            r,
            f,
            m,
            segment: named_segment(r, f, m),
            class: RfmClass::of(rh, fh, mh),
            tier: tier(r, f, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<RfmValues> {
        (0..1000)
            .map(|i| RfmValues {
                recency_days: (i % 365) as f64,
                frequency: (1 + i % 10) as f64,
                monetary: (100 * (1 + i % 50)) as f64,
            })
            .collect()
    }

    #[test]
    fn quintiles_ties_and_direction() {
        let m = RfmModel::learn(&rows(), &vec![None; 1000], 50, HighRule::MeanScore);
        let best = m.score(
            &RfmValues {
                recency_days: 0.0,
                frequency: 10.0,
                monetary: 5000.0,
            },
            None,
        );
        let worst = m.score(
            &RfmValues {
                recency_days: 364.0,
                frequency: 1.0,
                monetary: 100.0,
            },
            None,
        );
        assert_eq!((best.r, best.f, best.m), (5, 5, 5));
        assert_eq!((worst.r, worst.f, worst.m), (1, 1, 1));
        assert_eq!(best.class, RfmClass::ImportantValue);
        assert_eq!(best.class.as_str(), "重要价值客户");
        assert_eq!(worst.class, RfmClass::GeneralRetain);
        assert_eq!(best.tier, Tier::Core);
        assert_eq!(best.segment, "Champions");
        // Equal values, equal scores.
        let a = m.score(
            &RfmValues {
                recency_days: 10.0,
                frequency: 3.0,
                monetary: 700.0,
            },
            None,
        );
        let b = m.score(
            &RfmValues {
                recency_days: 10.0,
                frequency: 3.0,
                monetary: 700.0,
            },
            None,
        );
        assert_eq!(a, b);
        // Roughly a fifth of customers per recency score.
        let mut counts = [0; 6];
        for r in rows() {
            counts[m.score(&r, None).r as usize] += 1;
        }
        for c in &counts[1..] {
            assert!((150..=250).contains(c), "{counts:?}");
        }
    }

    #[test]
    fn per_group_thresholds_normalise_by_city() {
        // City A spends ten times city B: globally all of B looks poor, per city it does not.
        let mut v = Vec::new();
        let mut g = Vec::new();
        for i in 0..500 {
            v.push(RfmValues {
                recency_days: 5.0,
                frequency: 2.0,
                monetary: 1000.0 * (1 + i % 100) as f64,
            });
            g.push(Some("A".to_string()));
            v.push(RfmValues {
                recency_days: 5.0,
                frequency: 2.0,
                monetary: 100.0 * (1 + i % 100) as f64,
            });
            g.push(Some("B".to_string()));
        }
        let m = RfmModel::learn(&v, &g, 100, HighRule::MeanScore);
        let top_b = RfmValues {
            recency_days: 5.0,
            frequency: 2.0,
            monetary: 10_000.0,
        };
        assert_eq!(m.score(&top_b, Some("B")).m, 5);
        assert!(m.score(&top_b, None).m < 5);
        // Fixed thresholds are taken as given.
        let f = RfmModel::with_fixed(
            Cuts::fixed(
                [7.0, 30.0, 90.0, 180.0],
                [1.0, 2.0, 4.0, 8.0],
                [3000.0, 6000.0, 12000.0, 30000.0],
            ),
            HighRule::MeanValue,
        );
        let s = f.score(
            &RfmValues {
                recency_days: 3.0,
                frequency: 9.0,
                monetary: 50000.0,
            },
            None,
        );
        assert_eq!((s.r, s.f, s.m), (5, 5, 5));
        let s = f.score(
            &RfmValues {
                recency_days: 200.0,
                frequency: 1.0,
                monetary: 100.0,
            },
            None,
        );
        assert_eq!((s.r, s.f, s.m), (1, 1, 1));
    }
}
