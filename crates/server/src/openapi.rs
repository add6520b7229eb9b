//! The OpenAPI document: every operation of `routes`, its schemas and the bearer security scheme.

use crate::error::ErrorBody;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    modifiers(&Security),
    info(
        title = "c360 API",
        description = "Customer profiles (客户画像) of the hot dog chain: profiles, segments, predictions, live ingestion. Send your key as `Authorization: Bearer KEY`."
    ),
    paths(
        crate::routes::meta::me,
        crate::routes::meta::ws_ticket,
        crate::routes::meta::health,
        crate::routes::overview::overview,
        crate::routes::overview::capture,
        crate::routes::customers::list_customers,
        crate::routes::customers::customer_profile,
        crate::routes::customers::customer_timeline,
        crate::routes::customers::customer_behavior,
        crate::routes::customers::customer_emotion,
        crate::routes::customers::customer_preferences,
        crate::routes::recommendations::customer_recommendations,
        crate::routes::recommendations::anonymous_recommendations,
        crate::routes::behavior::behavior_funnel,
        crate::routes::behavior::behavior_paths,
        crate::routes::sentiment::sentiment,
        crate::routes::sentiment::score,
        crate::routes::network::network,
        crate::routes::network::customer_network,
        crate::routes::customers::customer_predictions,
        crate::routes::insights::customer_insights,
        crate::routes::segments::segments,
        crate::routes::segments::compare,
        crate::routes::live::post_order,
        crate::routes::live::post_event,
        crate::routes::live::post_event_batch,
        crate::routes::live::live,
        crate::routes::campaigns::list_campaigns,
        crate::routes::campaigns::suggestions,
        crate::routes::campaigns::program,
        crate::routes::campaigns::create_campaign,
        crate::routes::campaigns::get_campaign,
        crate::routes::campaigns::launch_campaign,
        crate::routes::campaigns::campaign_status,
        crate::routes::campaigns::campaign_results,
        crate::routes::campaigns::campaign_members,
        crate::routes::campaigns::get_settings,
        crate::routes::campaigns::put_settings,
        crate::routes::experiments::list_experiments,
        crate::routes::experiments::create_experiment,
        crate::routes::experiments::experiment_results,
        crate::routes::service::diagnose,
        crate::routes::service::tickets,
        crate::routes::audit::audit_trail,
        crate::routes::audiences::list_audiences,
        crate::routes::audiences::fields,
        crate::routes::audiences::create_audience,
        crate::routes::audiences::preview,
        crate::routes::audiences::get_audience,
        crate::routes::audiences::update_audience,
        crate::routes::audiences::archive_audience,
        crate::routes::audiences::audience_members,
        crate::routes::audiences::export_audience,
        crate::routes::audiences::overlap,
        crate::routes::audiences::lookalike,
        crate::routes::journeys::list_journeys,
        crate::routes::journeys::set_journey,
        crate::routes::journeys::journey_sends,
        crate::routes::menu::menu_engineering,
        crate::routes::privacy::export_customer,
        crate::routes::privacy::erase_customer,
        crate::routes::privacy::list_requests
    ),
    components(schemas(
        ErrorBody,
        crate::auth::Principal,
        crate::auth::Role,
        crate::routes::live::NewOrder,
        crate::routes::live::NewItem,
        crate::routes::live::NewEvent,
        crate::routes::live::EventBatch,
        crate::routes::live::Ingested,
        c360_core::campaign::CampaignSpec,
        c360_core::campaign::Audience,
        c360_core::campaign::Offer,
        c360_core::campaign::Variant,
        c360_core::experiments::ExperimentSpec,
        c360_core::audience::AudienceSpec,
        c360_core::audience::Rule,
        c360_core::audience::FieldRule,
        c360_core::audience::Bought,
        c360_core::audience::Op,
        c360_core::audience::Scalar,
        c360_core::audience::Lookalike,
        c360_core::audience::Format,
        crate::routes::audiences::LookalikeRequest,
        c360_core::journey::JourneySpec,
        c360_core::journey::JourneyKind,
        c360_core::menu::CategoryShift,
        crate::routes::audiences::FieldInfo,
        crate::routes::audiences::ProductInfo,
        crate::routes::campaigns::StatusChange,
        crate::routes::campaigns::CampaignList,
        crate::routes::campaigns::CampaignState,
        crate::routes::meta::Health,
        crate::routes::meta::WsTicket,
        c360_core::campaign::Campaign,
        c360_model::CampaignStatus,
        c360_model::CampaignAction,
        c360_model::Channel,
        c360_model::OfferKind,
        crate::routes::campaigns::Settings,
        crate::routes::service::DiagnoseRequest,
        crate::support::doc::DaypartCode,
        crate::support::doc::CustomerSort,
        crate::support::doc::SortOrder,
        crate::support::doc::CompareDim,
        crate::support::doc::PredictionKind,
        crate::support::doc::Lang,
        crate::support::doc::FunnelBy,
        crate::support::doc::CaptureBy,
        crate::support::doc::TicketStatus
    ))
)]
pub struct ApiDoc;

/// The document as the server serves it at `/api-docs/openapi.json` (pretty JSON with a final
/// newline): what `c360 openapi` prints, `web/openapi.json` holds and the dashboard's types
/// are generated from.
pub fn document() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// The bearer security scheme on every operation but the public health check, and the answers
/// operations give by their shape: 401 (no or unknown key) where a key is needed; 400 where
/// there is a parameter or a body to reject; 404 where the path names something that may not
/// exist; 403 where the caller's role (from `authz::RULES`, named in the description) or stores
/// may not allow it; 429 (with Retry-After) over a key's rate limit; 503 until the first ETL run
/// has written a warehouse; 500 (internal, no details).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{RefOr, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        // An audience rule is one key (all, any, not, field, bought): say so, so that a body
        // with two keys is outside the document as it is outside the API.
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::OneOf(one))) =
            components.schemas.get_mut("Rule")
        {
            for item in &mut one.items {
                if let utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o)) = item
                {
                    o.additional_properties = Some(Box::new(
                        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                    ));
                }
            }
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `c360 apikey create`, sent as `Authorization: Bearer KEY`."))
                    .build(),
            ),
        );
        // An ErrorBody answer, optionally with a Retry-After header.
        let answer = |what: &str, retry_after: bool| -> RefOr<utoipa::openapi::Response> {
            let mut b = ResponseBuilder::new().description(what).content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
            if retry_after {
                let secs = utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .minimum(Some(1));
                b = b.header(
                    "Retry-After",
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(secs)
                        .description(Some("Seconds to wait before retrying"))
                        .build(),
                );
            }
            RefOr::T(b.build())
        };
        let err = |what: &str| answer(what, false);
        let too_many = || {
            answer(
                "This key's rate limit (requests, or LLM insights): wait the seconds of Retry-After",
                true,
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let names_one = path.contains('{');
            for (method, op) in [
                ("GET", item.get.as_mut()),
                ("PUT", item.put.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("PATCH", item.patch.as_mut()),
            ]
            .into_iter()
            .filter_map(|(m, op)| op.map(|op| (m, op)))
            {
                let rule = crate::authz::rule_of(method, path);
                let roles = match rule.map(|r| r.callers) {
                    Some(crate::authz::Callers::Roles(roles)) => Some(roles),
                    _ => None,
                };
                let public = roles.is_none();
                let takes_input = op.request_body.is_some()
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let r = &mut op.responses.responses;
                if takes_input {
                    r.entry("400".into()).or_insert_with(|| {
                        err("A parameter or the body does not parse or breaks its documented bounds (the message names it)")
                    });
                    r.entry("422".into()).or_insert_with(|| {
                        err("Well formed, but the fields contradict each other or name what does not fit (the message names the field)")
                    });
                }
                if names_one {
                    r.entry("404".into())
                        .or_insert_with(|| err("No such resource"));
                }
                if let Some(roles) = roles {
                    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    let all = roles.len() == 3;
                    if !all || names_one || takes_input {
                        r.entry("403".into()).or_insert_with(|| {
                            err("Your role, or the stores your key covers, do not allow this (the message says which)")
                        });
                    }
                    let line = format!("Roles: {}.", names.join(", "));
                    op.description = Some(match op.description.take() {
                        Some(d) if !d.is_empty() => format!("{d}\n\n{line}"),
                        _ => line,
                    });
                }
                if !public {
                    r.entry("503".into())
                        .or_insert_with(|| err("No warehouse yet (run the ETL first)"));
                }
                if public {
                    op.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    op.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                    r.entry("401".into())
                        .or_insert_with(|| err("Missing or unknown API key"));
                    r.entry("429".into()).or_insert_with(too_many);
                }
                r.entry("500".into())
                    .or_insert_with(|| err("Internal error (no details; they are in the log)"));
            }
        }
    }
}
