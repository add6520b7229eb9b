//! Who is calling: API keys with roles, kept hashed in the metastore (`api_keys`).
//!
//! admin sees everything (and manages keys); analyst reads every customer with masked personal
//! data; store_manager reads only the customers and figures of their own stores and may post
//! orders for them. A key travels only as `Authorization: Bearer KEY` (never in a URL, where
//! proxies and browser history keep it). The WebSocket, whose browser API cannot set headers,
//! connects with a short-lived single-use ticket (`POST /api/v1/ws/ticket` with the header,
//! then `/ws?ticket=…`), signed here. The extractor that reads either is in `state` (it needs the
//! server's key table).
//!
//! A presented key is hashed (SHA-256) and the hash looked up; the stored hash is then compared
//! with the presented one in constant time. What an attacker controls reaches the comparison only
//! through SHA-256, so neither step tells them how much of a guess was right.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use c360_db::{get_i64, get_text, Db, Value};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Analyst,
    StoreManager,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "store_manager" => Some(Role::StoreManager),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::StoreManager => "store_manager",
        }
    }
}

/// The caller of a request, after their key was checked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The stores a store manager may see; empty for the other roles (who see all).
    pub stores: Vec<i64>,
    /// The hash of the key presented (never the key): what revocation, tickets and rate limits
    /// are keyed by. Not part of any answer.
    #[serde(skip)]
    #[schema(ignore)]
    pub key_hash: String,
}

impl Principal {
    /// None when the caller sees every store, else the stores they may see.
    pub fn store_scope(&self) -> Option<&[i64]> {
        (self.role == Role::StoreManager).then_some(self.stores.as_slice())
    }
    pub fn may_see_store(&self, store: Option<i64>) -> bool {
        match self.store_scope() {
            None => true,
            Some(s) => store.is_some_and(|x| s.contains(&x)),
        }
    }
    /// Raw location and similar sensitive detail: admins and analysts only.
    pub fn sees_location(&self) -> bool {
        self.role != Role::StoreManager
    }
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "role {} may not do this",
                self.role.as_str()
            )))
        }
    }
    /// A cache key part: callers with the same scope may share cached answers.
    pub fn scope_key(&self) -> String {
        format!("{}:{:?}", self.role.as_str(), self.stores)
    }
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The live key a presented key's hash names, compared in constant time after the lookup.
pub fn find_key<'a>(keys: &'a HashMap<String, Principal>, hash: &str) -> Option<&'a Principal> {
    let (stored, p) = keys.get_key_value(hash)?;
    bool::from(stored.as_bytes().ct_eq(hash.as_bytes())).then_some(p)
}

type HmacSha256 = Hmac<Sha256>;

/// How long a WebSocket ticket may wait before it is used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Signs and checks WebSocket tickets: `v1.<expiry unix secs>.<nonce>.<key id>.<mac>`, where the
/// key id is the first 16 hex digits of the key's hash and the MAC (HMAC-SHA256 under a key
/// derived from the metastore's secret, so every server of one metastore accepts it) covers the
/// expiry, the nonce and the key's whole hash. A ticket names no secret and opens one socket.
#[derive(Clone)]
pub struct Tickets {
    mac_key: Vec<u8>,
}

/// A ticket that checked out: whose key, and its nonce (for the single-use check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub key_hash: String,
    pub nonce: String,
    pub expires: u64,
}

impl Tickets {
    pub fn new(secret: &str) -> Tickets {
        let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        m.update(b"c360/ws-ticket/v1");
        Tickets {
            mac_key: m.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, expires: u64, nonce: &str, key_hash: &str) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.mac_key).expect("HMAC takes any key");
        m.update(format!("{expires}.{nonce}.{key_hash}").as_bytes());
        m
    }

    /// A ticket for `key_hash`, valid until `now_unix + TICKET_TTL`.
    pub fn issue(&self, key_hash: &str, now_unix: u64) -> String {
        let mut raw = [0u8; 12];
        rand::Rng::fill(&mut rand::rng(), &mut raw[..]);
        let nonce = hex::encode(raw);
        let expires = now_unix + TICKET_TTL.as_secs();
        let sig = hex::encode(self.mac(expires, &nonce, key_hash).finalize().into_bytes());
        let kid = &key_hash[..16.min(key_hash.len())];
        format!("v1.{expires}.{nonce}.{kid}.{sig}")
    }

    /// Checks a ticket's form, expiry and signature against the live keys; None when any fails.
    pub fn check(
        &self,
        ticket: &str,
        now_unix: u64,
        keys: &HashMap<String, Principal>,
    ) -> Option<Redeemed> {
        let mut it = ticket.split('.');
        let (Some("v1"), Some(exp), Some(nonce), Some(kid), Some(sig), None) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            return None;
        };
        let expires: u64 = exp.parse().ok()?;
        if expires < now_unix || expires > now_unix + TICKET_TTL.as_secs() {
            return None;
        }
        if kid.len() != 16 || nonce.len() != 24 {
            return None;
        }
        let sig = hex::decode(sig).ok()?;
        keys.keys()
            .filter(|h| h.starts_with(kid))
            .find(|h| self.mac(expires, nonce, h).verify_slice(&sig).is_ok())
            .map(|h| Redeemed {
                key_hash: h.clone(),
                nonce: nonce.to_string(),
                expires,
            })
    }
}

/// A token bucket per key: `rate` requests a second on average, bursts up to `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: std::sync::Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate <= 0` admits everything.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `who`, or answers how long until one is there.
    pub fn admit(&self, who: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.len() > 100_000 {
            // Only live keys get here; forget idle buckets (a full bucket is the default).
            let full = Duration::from_secs_f64(self.burst / self.rate);
            b.retain(|_, (_, t)| now.duration_since(*t) < full);
        }
        let (tokens, at) = b.entry(who.to_string()).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// Creates a key and returns it; only its hash is stored, so this is the one time it is seen.
pub async fn create_key(
    db: &Db,
    name: &str,
    role: Role,
    stores: &[i64],
) -> Result<String, ApiError> {
    if role == Role::StoreManager && stores.is_empty() {
        return Err(ApiError::BadRequest(
            "a store_manager key needs at least one store".into(),
        ));
    }
    if name.trim().is_empty() || name.contains('\0') || name.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "name: 1 to 64 characters, no NUL".into(),
        ));
    }
    let mut raw = [0u8; 24];
    rand::Rng::fill(&mut rand::rng(), &mut raw[..]);
    let key = format!("c360_{}", hex::encode(raw));
    let stores = stores
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    db.insert_rows(
        "api_keys",
        &[
            "key_hash",
            "name",
            "role",
            "stores",
            "created_at",
            "revoked",
        ],
        &[vec![
            hash_key(&key).into(),
            name.into(),
            role.as_str().into(),
            stores.into(),
            chrono::Utc::now().to_rfc3339().into(),
            Value::I(0),
        ]],
    )
    .await?;
    Ok(key)
}

pub async fn revoke_key(db: &Db, name: &str) -> Result<u64, ApiError> {
    let b = db.backend;
    let n = c360_db::query(format!(
        "UPDATE api_keys SET revoked = 1 WHERE name = {}",
        b.ph(1)
    ))
    .bind(name.to_string())
    .execute(&db.pool)
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .rows_affected();
    Ok(n)
}

/// Every live key, by hash.
pub async fn load_keys(db: &Db) -> Result<HashMap<String, Principal>, ApiError> {
    let mut out = HashMap::new();
    for r in db
        .fetch_all("SELECT key_hash, name, role, stores FROM api_keys WHERE revoked = 0")
        .await?
    {
        let (Some(h), Some(role)) = (
            get_text(&r, "key_hash"),
            get_text(&r, "role").and_then(|s| Role::parse(&s)),
        ) else {
            continue;
        };
        let stores = get_text(&r, "stores")
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        out.insert(
            h.clone(),
            Principal {
                name: get_text(&r, "name").unwrap_or_default(),
                role,
                stores,
                key_hash: h.clone(),
            },
        );
    }
    Ok(out)
}

/// The key names with their roles (never the keys).
pub async fn list_keys(db: &Db) -> Result<Vec<(String, String, String, bool)>, ApiError> {
    Ok(db
        .fetch_all("SELECT name, role, stores, revoked FROM api_keys ORDER BY created_at")
        .await?
        .iter()
        .map(|r| {
            (
                get_text(r, "name").unwrap_or_default(),
                get_text(r, "role").unwrap_or_default(),
                get_text(r, "stores").unwrap_or_default(),
                get_i64(r, "revoked").unwrap_or(0) != 0,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(hashes: &[&str]) -> HashMap<String, Principal> {
        hashes
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    Principal {
                        name: "k".into(),
                        role: Role::Analyst,
                        stores: vec![],
                        key_hash: h.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn tickets_are_signed_expire_and_name_their_key() {
        let t = Tickets::new("secret");
        let (a, b) = (hash_key("a"), hash_key("b"));
        let live = keys(&[&a, &b]);
        let tk = t.issue(&a, 1000);
        let r = t.check(&tk, 1000, &live).unwrap();
        assert_eq!(r.key_hash, a);
        assert!(
            t.check(&tk, 1000 + TICKET_TTL.as_secs() + 1, &live)
                .is_none(),
            "expired"
        );
        assert!(t.check(&tk, 1000, &keys(&[&b])).is_none(), "revoked key");
        assert!(
            Tickets::new("other").check(&tk, 1000, &live).is_none(),
            "other secret"
        );
        // Any changed part breaks the signature.
        let parts: Vec<&str> = tk.split('.').collect();
        for i in 1..parts.len() {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            let c = p[i].pop().unwrap();
            p[i].push(if c == '0' { '1' } else { '0' });
            assert!(
                t.check(&p.join("."), 1000, &live).is_none(),
                "part {i} changed"
            );
        }
        // An expiry pushed past the TTL is refused even if it were signed.
        assert!(t
            .check(
                "v1.99999999.000000000000000000000000.0000000000000000.00",
                1000,
                &live
            )
            .is_none());
        assert!(t.check("", 1000, &live).is_none());
    }

    #[test]
    fn a_key_is_found_only_by_its_own_hash() {
        let a = hash_key("a");
        let live = keys(&[&a]);
        assert!(find_key(&live, &a).is_some());
        assert!(find_key(&live, &hash_key("b")).is_none());
    }

    #[test]
    fn rate_limiter_allows_bursts_then_paces() {
        let r = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            r.admit("k", t0).unwrap();
        }
        let wait = r.admit("k", t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        r.admit("other", t0).unwrap();
        r.admit("k", t0 + Duration::from_millis(100)).unwrap();
        assert!(r.admit("k", t0 + Duration::from_millis(100)).is_err());
        let off = RateLimiter::new(0.0, 1.0);
        for _ in 0..1000 {
            off.admit("k", t0).unwrap();
        }
    }
}
