//! Who is calling: API keys with roles, kept hashed in the metastore (`api_keys`).
//!
//! admin sees everything (and manages keys); analyst reads every customer with masked personal
//! data; store_manager reads only the customers and figures of their own stores and may post
//! orders for them. A key is sent as `Authorization: Bearer KEY`, `X-API-Key: KEY`, or (for the
//! WebSocket, where browsers cannot set headers) `?key=KEY`; the extractor that reads it is in
//! `state` (it needs the server's key table).

use std::collections::HashMap;

use c360_db::{get_i64, get_text, Db, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
            h,
            Principal {
                name: get_text(&r, "name").unwrap_or_default(),
                role,
                stores,
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
