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
            session_of(id, &ev)
        })
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    out
}

/// One session from its events in time order.
fn session_of(id: String, ev: &[Event]) -> Session {
    let mut step = 0;
    let mut path: Vec<String> = Vec::new();
    for e in ev {
        if let Some(s) = step_of(&e.action, e.page.as_deref()) {
            if s == step + 1 {
                step = s;
            }
        }
        let p = e.page.as_deref().unwrap_or(&e.action);
        if path.last().map(String::as_str) != Some(p) && path.len() < 8 {
            path.push(p.to_string());
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
}

/// [`sessionize`] a session at a time, for more events than memory holds: events come in
/// grouped, and memory holds one session's. First every event with a session id, ordered by
/// (session id, time); then every event without one, ordered by (customer, time), customers
/// without an id first. Gives the sessions `sessionize` gives, in the order they close.
#[derive(Debug, Default)]
pub struct SessionStream {
    id: String,
    events: Vec<Event>,
    /// The last event without a session id: (customer, time).
    last: Option<(Option<i64>, i64)>,
}

impl SessionStream {
    /// Takes the next event; gives the session it closed, if any. An event out of the order
    /// above is an error (a session would be cut in two).
    pub fn push(&mut self, e: Event) -> Result<Option<Session>, String> {
        match e.session.as_deref() {
            Some(s) => {
                if self.last.is_some() {
                    return Err(format!(
                        "event of session {s:?} after events without a session"
                    ));
                }
                if !self.events.is_empty() && s == self.id {
                    self.order(&e)?;
                    self.events.push(e);
                    return Ok(None);
                }
                if !self.events.is_empty() && s < self.id.as_str() {
                    return Err(format!("session {s:?} after {:?}", self.id));
                }
                let id = s.to_string();
                Ok(self.start(id, e))
            }
            None => {
                let (c, t) = (e.customer, e.time);
                let cont = match self.last {
                    Some((lc, lt)) if (c, t) < (lc, lt) => {
                        return Err(format!(
                            "event of customer {c:?} at {t} after customer {lc:?} at {lt}"
                        ))
                    }
                    Some((lc, lt)) => lc == c && t - lt <= GAP_MICROS,
                    None => false,
                };
                self.last = Some((c, t));
                if cont {
                    self.events.push(e);
                    return Ok(None);
                }
                let id = format!("auto:{}:{}", c.unwrap_or(0), t);
                Ok(self.start(id, e))
            }
        }
    }

    fn order(&self, e: &Event) -> Result<(), String> {
        match self.events.last() {
            Some(p) if e.time < p.time => Err(format!(
                "session {:?}: an event at {} after one at {}",
                self.id, e.time, p.time
            )),
            _ => Ok(()),
        }
    }

    /// Closes the open session (if any) and opens `id` with `e`.
    fn start(&mut self, id: String, e: Event) -> Option<Session> {
        let closed = self.close();
        self.id = id;
        self.events.push(e);
        closed
    }

    fn close(&mut self) -> Option<Session> {
        if self.events.is_empty() {
            return None;
        }
        let s = session_of(std::mem::take(&mut self.id), &self.events);
        self.events.clear();
        Some(s)
    }

    /// The last session.
    pub fn finish(mut self) -> Option<Session> {
        self.close()
    }
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

    /// The stream, fed events in its order, gives what `sessionize` gives from any order: on
    /// random events with shared session ids across customers, events without ids (a customer
    /// or none), equal times and gaps either side of 30 minutes.
    #[test]
    fn a_session_at_a_time_as_all_at_once() {
        use rand::{Rng, SeedableRng};
        const ACTIONS: [(&str, &str); 6] = [
            ("view", "menu"),
            ("click", "item"),
            ("view", "item"),
            ("add_cart", "cart"),
            ("pay", "pay"),
            ("view", "home"),
        ];
        for seed in 0..40u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let n = rng.random_range(0..300);
            let events: Vec<Event> = (0..n)
                .map(|_| {
                    let (a, p) = ACTIONS[rng.random_range(0..ACTIONS.len())];
                    Event {
                        customer: (rng.random::<f64>() < 0.85).then(|| rng.random_range(1..6)),
                        session: (rng.random::<f64>() < 0.5)
                            .then(|| format!("s{}", rng.random_range(0..8))),
                        action: a.into(),
                        page: (rng.random::<f64>() < 0.9).then(|| p.to_string()),
                        // Minutes: ties, and gaps either side of 30.
                        time: rng.random_range(0..600) * 60_000_000,
                        device: (rng.random::<f64>() < 0.5)
                            .then(|| format!("d{}", rng.random_range(0..3))),
                    }
                })
                .collect();
            let want = sessionize(events.clone());
            // The stream's order; equal keys in input order, as the sorts in `sessionize`.
            let mut order: Vec<usize> = (0..events.len()).collect();
            order.sort_by(|&i, &j| {
                let (a, b) = (&events[i], &events[j]);
                match (&a.session, &b.session) {
                    (Some(x), Some(y)) => (x, a.time, a.customer).cmp(&(y, b.time, b.customer)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => (a.customer, a.time).cmp(&(b.customer, b.time)),
                }
                .then(i.cmp(&j))
            });
            let mut st = SessionStream::default();
            let mut got: Vec<Session> = Vec::new();
            for i in order {
                got.extend(st.push(events[i].clone()).unwrap());
            }
            got.extend(st.finish());
            got.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
            assert_eq!(got, want, "seed {seed}");
        }
        // Out of order is refused, not cut into two sessions.
        let mut st = SessionStream::default();
        assert!(st
            .push(ev(1, Some("b"), "view", "menu", 0))
            .unwrap()
            .is_none());
        assert!(st.push(ev(1, Some("a"), "view", "menu", 0)).is_err());
        let mut st = SessionStream::default();
        st.push(ev(2, None, "view", "menu", 0)).unwrap();
        assert!(st.push(ev(1, None, "view", "menu", 9)).is_err());
        assert!(st.push(ev(2, Some("a"), "view", "menu", 9)).is_err());
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
