//! Saved audiences (标签/人群): create, preview, read with their versions and sizes over time,
//! change (a new version), archive, page through members, export (CSV or Parquet), compare
//! (overlap) and expand (lookalike). Membership is the snapshot's bitmap with the live orders
//! since applied to rule audiences, customer by customer. Store managers see and change only
//! audiences limited to their stores; every write, refusal and export is audited.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use c360_core::audience::{self, Audience, AudienceSpec, Format, OrderFact, RoaringTreemap};
use c360_db::{get_i64, get_text};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiError, ApiResult, J, P, Q};
use crate::state::{AppState, Snapshot};
use crate::support::*;

/// One audience's members at a snapshot, with the live orders since applied.
pub struct LiveMembers {
    members: Arc<RoaringTreemap>,
    /// Customers re-decided from their live orders, with how many orders they had then.
    seen: HashMap<i64, u64>,
}

/// Audience `id`, if the caller may see it.
async fn audience_of(st: &AppState, p: &Principal, id: i64) -> ApiResult<Audience> {
    let a = audience::get(&st.inner().meta, id).await?;
    if !authz::sees_audience(p, &a.spec) {
        // Another store's audience is as good as absent.
        return Err(ApiError::NotFound(format!("audience {id} does not exist")));
    }
    Ok(a)
}

/// Audience `a`'s members now: the snapshot's bitmap (cached on disk beside the serving index),
/// and for a rule audience every customer with orders since the snapshot decided again from
/// their profile and all their orders.
pub(crate) async fn members_of(
    st: &AppState,
    s: &Snapshot,
    a: &Audience,
) -> ApiResult<Arc<RoaringTreemap>> {
    let key = (a.audience_id, a.version);
    let mut cache = s.audiences.lock().await;
    let lm = match cache.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let mut base = audience::members(&s.wh, &s.sess, &st.inner().meta, a).await?;
            // Customers erased since the snapshot are in nobody's audience.
            let erased = s.erased_ids();
            if erased.iter().any(|c| base.contains(*c as u64)) {
                let mut m = (*base).clone();
                for c in erased {
                    m.remove(c as u64);
                }
                base = Arc::new(m);
            }
            e.insert(LiveMembers {
                members: base,
                seen: HashMap::new(),
            })
        }
    };
    if let Some(rule) = &a.spec.rule {
        let changed: Vec<_> = st
            .live_profiles()
            .await
            .into_iter()
            .filter(|(c, p)| lm.seen.get(c) != Some(&(p.features.orders as u64)))
            .collect();
        if !changed.is_empty() {
            let cat = catalog(s).await?;
            let mut m = (*lm.members).clone();
            for (c, p) in changed {
                if customer_matches(st, s, rule, &a.spec.store_ids, c, &p, &cat).await? {
                    m.insert(c as u64);
                } else {
                    m.remove(c as u64);
                }
                lm.seen.insert(c, p.features.orders as u64);
            }
            lm.members = Arc::new(m);
        }
    }
    Ok(lm.members.clone())
}

async fn catalog(s: &Snapshot) -> ApiResult<Arc<audience::Catalog>> {
    Ok(s.catalog
        .get_or_try_init(|| async { audience::Catalog::read(&s.sess).await.map(Arc::new) })
        .await?
        .clone())
}

/// Whether customer `c` (re-scored live as `p`) is in a rule audience now.
async fn customer_matches(
    st: &AppState,
    s: &Snapshot,
    rule: &audience::Rule,
    stores: &[i64],
    c: i64,
    p: &c360_core::profile::LiveProfile,
    cat: &audience::Catalog,
) -> ApiResult<bool> {
    let Some(row) = s.rows_of("v_customer_360", c)?.into_iter().next() else {
        return Ok(false);
    };
    if !stores.is_empty()
        && !row["home_store_id"]
            .as_i64()
            .is_some_and(|h| stores.contains(&h))
    {
        return Ok(false);
    }
    let mut orders: Vec<OrderFact> = s.index.orders(c)?.iter().map(OrderFact::of_row).collect();
    let rows = st
        .inner()
        .meta
        .fetch(
            "SELECT store_id, order_time, day, total_fen, items FROM live_orders WHERE customer_id = ? AND day >= ?",
            &[c.into(), s.end_day.into()],
        )
        .await?;
    let mut live = Vec::with_capacity(rows.len());
    let mut spend = 0i64;
    for r in &rows {
        spend += get_i64(r, "total_fen").unwrap_or(0);
        let items: Vec<Value> =
            serde_json::from_str(&get_text(r, "items").unwrap_or_default()).unwrap_or_default();
        live.push(OrderFact {
            day: get_i64(r, "day").unwrap_or(i64::MIN),
            paid: true,
            daypart: get_text(r, "order_time")
                .and_then(|t| c360_model::parse_ts(&t).ok())
                .map(|t| c360_model::Daypart::of(t).code().to_string()),
            store_id: get_i64(r, "store_id"),
            // A live order does not say its channel: a rule on the channel counts only the
            // snapshot's orders.
            channel: None,
            product_ids: items
                .iter()
                .filter_map(|i| i["product_id"].as_i64())
                .collect(),
        });
    }
    let score = s.models.as_ref().map(|m| m.score(p));
    let profile = audience::live_profile(row, &live, spend, p, score.as_ref());
    orders.extend(live);
    Ok(audience::matches(rule, &profile, &orders, cat, s.end_day))
}

/// The saved audience a campaign targets, as its launch sees it (None: it names none).
pub(crate) async fn for_campaign(
    st: &AppState,
    p: &Principal,
    spec: &c360_core::campaign::CampaignSpec,
) -> ApiResult<Option<Arc<RoaringTreemap>>> {
    let Some(id) = spec.audience.audience_id else {
        return Ok(None);
    };
    let a = audience_of(st, p, id).await.map_err(|_| {
        ApiError::Unprocessable(format!(
            "audience.audience_id: audience {id} does not exist"
        ))
    })?;
    if a.status != "active" {
        return Err(ApiError::Unprocessable(format!(
            "audience.audience_id: audience {id} is archived"
        )));
    }
    let s = st.snapshot().await?;
    Ok(Some(members_of(st, &s, &a).await?))
}

/// An audience in the list, with its size at the last snapshot it was measured at.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceRow {
    pub audience: Audience,
    pub last_size: Option<i64>,
    /// That snapshot's observation end (YYYY-MM-DD).
    pub last_as_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceList {
    pub audiences: Vec<AudienceRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Archived audiences too.
    #[serde(default)]
    archived: bool,
}

#[utoipa::path(get, path = "/api/v1/audiences", params(ListParams), responses((status = 200, body = AudienceList, description = "Saved audiences the caller may see, newest first")))]
pub async fn list_audiences(
    State(st): State<AppState>,
    p: Principal,
    Q(lp): Q<ListParams>,
) -> ApiResult<Json<AudienceList>> {
    let meta = &st.inner().meta;
    let mut all = audience::list(meta, lp.archived).await?;
    all.retain(|a| authz::sees_audience(&p, &a.spec));
    let mut last: HashMap<i64, (i64, i64)> = HashMap::new();
    for r in meta
        .db
        .fetch(
            "SELECT audience_id, size, as_of_day FROM audience_sizes ORDER BY wh_version, version",
            &[],
        )
        .await?
    {
        if let Some(id) = get_i64(&r, "audience_id") {
            last.insert(
                id,
                (
                    get_i64(&r, "size").unwrap_or(0),
                    get_i64(&r, "as_of_day").unwrap_or(0),
                ),
            );
        }
    }
    Ok(Json(AudienceList {
        audiences: all
            .into_iter()
            .map(|a| {
                let l = last.get(&a.audience_id);
                AudienceRow {
                    last_size: l.map(|x| x.0),
                    last_as_of: l.map(|x| c360_model::Day(x.1).to_string()),
                    audience: a,
                }
            })
            .collect(),
    }))
}

/// What the rules may test: profile fields with their kind, dayparts, channels, products.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fields {
    pub fields: Vec<FieldInfo>,
    pub dayparts: Vec<String>,
    pub channels: Vec<String>,
    pub products: Vec<ProductInfo>,
    /// Values the text fields hold (rfm_class, tier, lifecycle …).
    pub values: std::collections::BTreeMap<String, Vec<String>>,
}

/// A profile field a rule may test.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldInfo {
    pub name: String,
    /// number or text.
    pub kind: String,
}

/// A product a behaviour rule may name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductInfo {
    pub sku: String,
    pub name: String,
    pub category: String,
}

#[utoipa::path(get, path = "/api/v1/audiences/fields", responses((status = 200, body = Fields, description = "What an audience rule may test")))]
pub async fn fields(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Fields>> {
    let s = st.snapshot().await?;
    let products: Vec<ProductInfo> = c360_core::query::query(
        &s.sess,
        "SELECT sku, name, category FROM products ORDER BY sku",
    )
    .await?
    .iter()
    .map(|r| {
        let t = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        ProductInfo {
            sku: t("sku"),
            name: t("name"),
            category: t("category"),
        }
    })
    .collect();
    let mut values = std::collections::BTreeMap::new();
    values.insert(
        "rfm_class".to_string(),
        c360_model::RfmClass::ALL
            .iter()
            .map(|x| x.as_str().to_string())
            .collect(),
    );
    values.insert(
        "tier".to_string(),
        c360_model::Tier::ALL
            .iter()
            .map(|x| x.as_str().to_string())
            .collect(),
    );
    values.insert(
        "lifecycle".to_string(),
        c360_model::Lifecycle::ALL
            .iter()
            .map(|x| x.as_str().to_string())
            .collect(),
    );
    Ok(Json(Fields {
        fields: audience::FIELDS
            .iter()
            .map(|(f, k)| FieldInfo {
                name: f.to_string(),
                kind: match k {
                    audience::Kind::Number => "number",
                    audience::Kind::Text => "text",
                }
                .to_string(),
            })
            .collect(),
        dayparts: c360_model::Daypart::ALL
            .iter()
            .map(|d| d.code().to_string())
            .collect(),
        channels: audience::CHANNELS.iter().map(|c| c.to_string()).collect(),
        products,
        values,
    }))
}

/// An audience's id and current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceState {
    pub audience_id: i64,
    pub version: i64,
    pub status: String,
}

#[utoipa::path(post, path = "/api/v1/audiences", request_body = AudienceSpec, responses((status = 201, body = AudienceState, description = "Saved (version 1)"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_audience(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<AudienceSpec>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        authz::audience(&p, &spec)?;
        seed_visible(&st, &p, &spec).await?;
        Ok(audience::create(&st.inner().meta, &spec, &p.name).await?)
    }
    .await;
    let id = logged(
        &st,
        &p,
        "audience.create",
        &spec.name,
        json!({"kind": spec.kind()}),
        r,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(AudienceState {
            audience_id: id,
            version: 1,
            status: "active".into(),
        }),
    ))
}

/// A lookalike's seed must be an audience the caller sees.
async fn seed_visible(st: &AppState, p: &Principal, spec: &AudienceSpec) -> ApiResult<()> {
    if let Some(l) = &spec.lookalike {
        audience_of(st, p, l.seed).await.map_err(|_| {
            ApiError::Unprocessable(format!(
                "lookalike.seed: audience {} does not exist",
                l.seed
            ))
        })?;
    }
    Ok(())
}

/// An audience's size now and a sample of its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub size: u64,
    /// The snapshot's observation end (YYYY-MM-DD).
    pub as_of: String,
    /// Up to 20 members spread over the audience, with their profile columns.
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<Value>,
}

#[utoipa::path(post, path = "/api/v1/audiences/preview", request_body = AudienceSpec, responses((status = 200, body = Preview, description = "Size and a sample of the definition's members at the snapshot (nothing is saved)"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn preview(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<AudienceSpec>,
) -> ApiResult<Json<Preview>> {
    authz::audience(&p, &spec)?;
    seed_visible(&st, &p, &spec).await?;
    let s = st.snapshot().await?;
    let m = audience::evaluate(&s.sess, &st.inner().meta, &spec, s.end_day).await?;
    Ok(Json(Preview {
        size: m.len(),
        as_of: c360_model::Day(s.end_day).to_string(),
        sample: audience::sample(&s.sess, &m, 20).await?,
    }))
}

/// An audience with its members now, every version of its definition and its size at each
/// snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceDetail {
    pub audience: Audience,
    /// Members now (the snapshot's, with live orders applied to rule audiences).
    pub size: u64,
    pub as_of: String,
    pub versions: Vec<audience::Version>,
    pub sizes: Vec<audience::SizePoint>,
}

#[utoipa::path(get, path = "/api/v1/audiences/{id}", params(("id" = i64, Path)), responses((status = 200, body = AudienceDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_audience(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<AudienceDetail>> {
    let a = audience_of(&st, &p, id).await?;
    let s = st.snapshot().await?;
    let size = if a.status == "active" {
        members_of(&st, &s, &a).await?.len()
    } else {
        0
    };
    let meta = &st.inner().meta;
    Ok(Json(AudienceDetail {
        versions: audience::versions(meta, id).await?,
        sizes: audience::sizes(meta, id).await?,
        size,
        as_of: c360_model::Day(s.end_day).to_string(),
        audience: a,
    }))
}

#[utoipa::path(put, path = "/api/v1/audiences/{id}", params(("id" = i64, Path)), request_body = AudienceSpec, responses((status = 200, body = AudienceState, description = "A new version of the definition"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "Archived, or changed meanwhile")))]
pub async fn update_audience(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    J(spec): J<AudienceSpec>,
) -> ApiResult<Json<AudienceState>> {
    let r = async {
        audience_of(&st, &p, id).await?;
        authz::audience(&p, &spec)?;
        seed_visible(&st, &p, &spec).await?;
        Ok(audience::update(&st.inner().meta, id, &spec, &p.name).await?)
    }
    .await;
    let v = logged(
        &st,
        &p,
        "audience.update",
        &format!("audience:{id}"),
        json!({"kind": spec.kind()}),
        r,
    )
    .await?;
    Ok(Json(AudienceState {
        audience_id: id,
        version: v,
        status: "active".into(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/audiences/{id}", params(("id" = i64, Path)), responses((status = 200, body = AudienceState, description = "Archived (its history stays)"), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn archive_audience(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<AudienceState>> {
    let r = async {
        let a = audience_of(&st, &p, id).await?;
        audience::archive(&st.inner().meta, id).await?;
        Ok(a.version)
    }
    .await;
    let v = logged(
        &st,
        &p,
        "audience.archive",
        &format!("audience:{id}"),
        json!({}),
        r,
    )
    .await?;
    Ok(Json(AudienceState {
        audience_id: id,
        version: v,
        status: "archived".into(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersParams {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    #[param(minimum = 0)]
    offset: Option<u64>,
}

/// A page of an audience's members (in customer id order) with their profile columns.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersPage {
    pub size: u64,
    pub offset: u64,
    #[schema(value_type = Vec<Object>)]
    pub customers: Vec<Value>,
}

#[utoipa::path(get, path = "/api/v1/audiences/{id}/members", params(("id" = i64, Path), MembersParams), responses((status = 200, body = MembersPage), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn audience_members(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(mp): Q<MembersParams>,
) -> ApiResult<Json<MembersPage>> {
    let limit = mp.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1 to 1000".into()));
    }
    let offset = mp.offset.unwrap_or(0);
    let a = audience_of(&st, &p, id).await?;
    let s = st.snapshot().await?;
    let m = members_of(&st, &s, &a).await?;
    let ids: Vec<i64> = m
        .iter()
        .skip(offset.min(u64::from(u32::MAX)) as usize)
        .take(limit as usize)
        .map(|x| x as i64)
        .collect();
    let customers = if ids.is_empty() {
        Vec::new()
    } else {
        c360_core::query::query(
            &s.sess,
            &format!(
                "SELECT {} FROM v_customer_360 WHERE customer_id IN {} ORDER BY customer_id",
                audience::EXPORT_COLUMNS,
                c360_core::query::in_list(&ids)
            ),
        )
        .await?
    };
    Ok(Json(MembersPage {
        size: m.len(),
        offset,
        customers,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// csv (default) or parquet.
    format: Option<Format>,
}

#[utoipa::path(get, path = "/api/v1/audiences/{id}/export", params(("id" = i64, Path), ExportParams), responses((status = 200, description = "Every member with their profile columns (no personal data): CSV or Parquet", content((String = "text/csv"), (Vec<u8> = "application/vnd.apache.parquet"))), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn export_audience(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(ep): Q<ExportParams>,
) -> ApiResult<impl IntoResponse> {
    let format = ep.format.unwrap_or(Format::Csv);
    let r = async {
        let a = audience_of(&st, &p, id).await?;
        let s = st.snapshot().await?;
        let m = members_of(&st, &s, &a).await?;
        let mut buf = Vec::new();
        let rows = audience::export(&s.sess, &m, format, &mut buf).await?;
        Ok((rows, buf))
    }
    .await;
    let (rows, buf) = logged(
        &st,
        &p,
        "audience.export",
        &format!("audience:{id}"),
        json!({"format": format}),
        r,
    )
    .await?;
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Parquet => ("application/vnd.apache.parquet", "parquet"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audience-{id}.{ext}\""),
            ),
            (header::HeaderName::from_static("x-rows"), rows.to_string()),
        ],
        buf,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverlapParams {
    /// 2 to 10 audience ids, comma-separated.
    #[param(pattern = r"^[0-9]{1,18}(,[0-9]{1,18}){1,9}$")]
    ids: String,
}

#[utoipa::path(get, path = "/api/v1/audiences/overlap", params(OverlapParams), responses((status = 200, body = audience::Overlap, description = "Sizes, pairwise intersections and Jaccard similarity"), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn overlap(
    State(st): State<AppState>,
    p: Principal,
    Q(op): Q<OverlapParams>,
) -> ApiResult<Json<audience::Overlap>> {
    let ids: Vec<i64> = op
        .ids
        .split(',')
        .map(|x| x.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::BadRequest("ids: comma-separated audience ids".into()))?;
    if !(2..=10).contains(&ids.len()) {
        return Err(ApiError::BadRequest("ids: 2 to 10 audiences".into()));
    }
    let s = st.snapshot().await?;
    let mut sets = Vec::with_capacity(ids.len());
    for id in ids {
        let a = audience_of(&st, &p, id).await?;
        sets.push((id, members_of(&st, &s, &a).await?));
    }
    Ok(Json(audience::overlap(&sets)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookalikeRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(minimum = 1, maximum = 100000000)]
    pub size: u64,
}

#[utoipa::path(post, path = "/api/v1/audiences/{id}/lookalike", params(("id" = i64, Path)), request_body = LookalikeRequest, responses((status = 201, body = AudienceState, description = "A new audience: the customers most like this one's, outside it, within its stores"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn lookalike(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    J(b): J<LookalikeRequest>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        let seed = audience_of(&st, &p, id).await?;
        let spec = AudienceSpec {
            name: b.name.clone(),
            description: format!("lookalike of audience {id} ({})", seed.spec.name),
            store_ids: seed.spec.store_ids.clone(),
            rule: None,
            sql: None,
            lookalike: Some(audience::Lookalike {
                seed: id,
                size: b.size,
            }),
        };
        authz::audience(&p, &spec)?;
        Ok(audience::create(&st.inner().meta, &spec, &p.name).await?)
    }
    .await;
    let new = logged(
        &st,
        &p,
        "audience.create",
        &b.name,
        json!({"kind": "lookalike", "seed": id}),
        r,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(AudienceState {
            audience_id: new,
            version: 1,
            status: "active".into(),
        }),
    ))
}
