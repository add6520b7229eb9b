//! Behaviour tracks: sessions from page events, the ordering funnel (menu → item → cart → pay)
//! and paths through the pages.
//!
//! A session is the app's session id when the event has one; events without one are cut into
//! sessions at 30 minutes of inactivity per customer. The funnel is strict: a step counts only
//! when the steps before it happened earlier in the same session. No I/O here: the ETL feeds
//! events in and writes sessions out; per-segment figures are aggregations of sessions.

use std::collections::BTreeMap;

/// One page event (times in microseconds).
#[derive(Debug, Clone)]
pub struct Event {
    pub customer: Option<i64>,
    pub session: Option<String>,
    pub action: String,
    pub page: Option<String>,
    pub time: i64,
    pub device: Option<String>,
}

/// The funnel's steps after "session started".
pub const STEPS: [&str; 4] = ["menu", "item", "cart", "pay"];

/// Which funnel step an event is, if any.
pub fn step_of(action: &str, page: Option<&str>) -> Option<usize> {
    match (action, page) {
        ("view", Some("menu")) => Some(1),
        ("click", Some("item")) | ("view", Some("item")) => Some(2),
        ("add_cart", _) => Some(3),
        ("pay", _) => Some(4),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub customer: Option<i64>,
    pub start: i64,
    pub end: i64,
    pub events: usize,
    /// Furthest step reached in order (0 = none of them).
    pub max_step: usize,
    /// Pages in order, repeats of the same page in a row collapsed, at most 8.
    pub path: Vec<String>,
    pub device: Option<String>,
}

pub const GAP_MICROS: i64 = 30 * 60 * 1_000_000;

/// Groups events into sessions (see the module note), sessions ordered by start.
pub fn sessionize(mut events: Vec<Event>) -> Vec<Session> {
    // Assign a session key to events without one: per customer, a new session after the gap.
    events.sort_by(|a, b| a.customer.cmp(&b.customer).then(a.time.cmp(&b.time)));
    let mut last: Option<(Option<i64>, i64, String)> = None;
    for e in events.iter_mut() {
        if e.session.is_some() {
            continue;
        }
        let key = match &last {
            Some((c, t, k)) if *c == e.customer && e.time - t <= GAP_MICROS => k.clone(),
            _ => format!("auto:{}:{}", e.customer.unwrap_or(0), e.time),
        };
        last = Some((e.customer, e.time, key.clone()));
        e.session = Some(key);
    }
    let mut by: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in events {
        by.entry(e.session.clone().unwrap_or_default())
            .or_default()
            .push(e);
    }
    let mut out: Vec<Session> = by
        .into_iter()
        .map(|(id, mut ev)| {
            ev.sort_by_key(|e| e.time);
            let mut step = 0;
            let mut path: Vec<String> = Vec::new();
            for e in &ev {
                if let Some(s) = step_of(&e.action, e.page.as_deref()) {
                    if s == step + 1 {
                        step = s;
                    }
                }
                let p = e.page.clone().unwrap_or_else(|| e.action.clone());
                if path.last() != Some(&p) && path.len() < 8 {
                    path.push(p);
                }
            }
            Session {
                id,
                customer: ev.iter().find_map(|e| e.customer),
                start: ev[0].time,
                end: ev[ev.len() - 1].time,
                events: ev.len(),
                max_step: step,
                path,
                device: ev.iter().find_map(|e| e.device.clone()),
            }
        })
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    out
}

/// Sessions reaching each step, the conversion from the step before and the drop-off.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Funnel {
    pub sessions: u64,
    /// reached[i] = sessions that reached STEPS[i].
    pub reached: [u64; 4],
    /// reached[i] / reached[i-1] (the first: / sessions).
    pub step_conversion: [f64; 4],
    /// 1 − step_conversion.
    pub drop_off: [f64; 4],
    /// pay / sessions.
    pub overall_conversion: f64,
}

impl Funnel {
    /// From session counts by furthest step: `by_max[s]` = sessions whose max_step is `s`.
    pub fn from_max_steps(by_max: &[u64; 5]) -> Funnel {
        let sessions: u64 = by_max.iter().sum();
        let mut reached = [0u64; 4];
        for (i, r) in reached.iter_mut().enumerate() {
            *r = by_max[i + 1..].iter().sum();
        }
        let mut conv = [0.0; 4];
        let mut prev = sessions;
        for i in 0..4 {
            conv[i] = if prev > 0 {
                reached[i] as f64 / prev as f64
            } else {
                0.0
            };
            prev = reached[i];
        }
        Funnel {
            sessions,
            reached,
            step_conversion: conv,
            drop_off: conv.map(|c| 1.0 - c),
            overall_conversion: if sessions > 0 {
                reached[3] as f64 / sessions as f64
            } else {
                0.0
            },
        }
    }

    pub fn of(sessions: &[Session]) -> Funnel {
        let mut by = [0u64; 5];
        for s in sessions {
            by[s.max_step.min(4)] += 1;
        }
        Funnel::from_max_steps(&by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(c: i64, s: Option<&str>, a: &str, p: &str, t: i64) -> Event {
        Event {
            customer: Some(c),
            session: s.map(str::to_string),
            action: a.into(),
            page: Some(p.into()),
            time: t * 1_000_000,
            device: None,
        }
    }

    #[test]
    fn strict_funnel_and_gap_sessions() {
        let e = vec![
            ev(1, Some("a"), "view", "menu", 0),
            ev(1, Some("a"), "click", "item", 5),
            ev(1, Some("a"), "add_cart", "cart", 9),
            ev(1, Some("a"), "pay", "pay", 20),
            // Skips the menu: reaches nothing in a strict funnel.
            ev(2, Some("b"), "click", "item", 0),
            ev(2, Some("b"), "pay", "pay", 3),
            // No session id: two sessions an hour apart.
            ev(3, None, "view", "menu", 0),
            ev(3, None, "click", "item", 60),
            ev(3, None, "view", "menu", 3600),
            ev(3, None, "view", "menu", 3601),
        ];
        let s = sessionize(e);
        assert_eq!(s.len(), 4);
        let a = s.iter().find(|s| s.id == "a").unwrap();
        assert_eq!(a.max_step, 4);
        assert_eq!(a.path, vec!["menu", "item", "cart", "pay"]);
        assert_eq!(s.iter().find(|s| s.id == "b").unwrap().max_step, 0);
        let auto: Vec<&Session> = s.iter().filter(|s| s.id.starts_with("auto:3:")).collect();
        assert_eq!(auto.len(), 2);
        assert_eq!(auto[1].path, vec!["menu"], "repeats collapse");
        let f = Funnel::of(&s);
        assert_eq!(f.sessions, 4);
        assert_eq!(f.reached, [3, 2, 1, 1]);
        assert!((f.step_conversion[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((f.overall_conversion - 0.25).abs() < 1e-12);
    }
}
