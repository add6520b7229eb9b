//! The router: every route of the API, the WebSocket and the API documents, one module per resource.

pub mod audiences;
pub mod audit;
pub mod behavior;
pub mod campaigns;
pub mod customers;
pub mod experiments;
pub mod insights;
pub mod journeys;
pub mod live;
pub mod menu;
pub mod meta;
pub mod network;
pub mod overview;
pub mod privacy;
pub mod recommendations;
pub mod segments;
pub mod sentiment;
pub mod service;
pub mod ws;

use crate::state::AppState;
use axum::routing::{get, post, put};
use axum::Router;
use utoipa::OpenApi;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(meta::me))
        .route("/api/v1/ws/ticket", post(meta::ws_ticket))
        .route("/api/v1/health", get(meta::health))
        .route("/api/v1/overview", get(overview::overview))
        .route("/api/v1/capture", get(overview::capture))
        .route("/api/v1/customers", get(customers::list_customers))
        .route("/api/v1/customers/{id}", get(customers::customer_profile))
        .route(
            "/api/v1/customers/{id}/timeline",
            get(customers::customer_timeline),
        )
        .route(
            "/api/v1/customers/{id}/behavior",
            get(customers::customer_behavior),
        )
        .route(
            "/api/v1/customers/{id}/emotion",
            get(customers::customer_emotion),
        )
        .route(
            "/api/v1/customers/{id}/preferences",
            get(customers::customer_preferences),
        )
        .route(
            "/api/v1/customers/{id}/recommendations",
            get(recommendations::customer_recommendations),
        )
        .route(
            "/api/v1/customers/{id}/predictions",
            get(customers::customer_predictions),
        )
        .route(
            "/api/v1/customers/{id}/insights",
            get(insights::customer_insights),
        )
        .route("/api/v1/segments", get(segments::segments))
        .route("/api/v1/compare/{dim}", get(segments::compare))
        .route("/api/v1/orders", post(live::post_order))
        .route("/api/v1/events", post(live::post_event))
        .route("/api/v1/events/batch", post(live::post_event_batch))
        .route("/api/v1/behavior/funnel", get(behavior::behavior_funnel))
        .route("/api/v1/behavior/paths", get(behavior::behavior_paths))
        .route("/api/v1/sentiment", get(sentiment::sentiment))
        .route("/api/v1/sentiment/score", post(sentiment::score))
        .route("/api/v1/network", get(network::network))
        .route(
            "/api/v1/customers/{id}/network",
            get(network::customer_network),
        )
        .route(
            "/api/v1/recommendations",
            get(recommendations::anonymous_recommendations),
        )
        .route("/api/v1/live", get(live::live))
        .route(
            "/api/v1/campaigns",
            get(campaigns::list_campaigns).post(campaigns::create_campaign),
        )
        .route("/api/v1/campaigns/program", get(campaigns::program))
        .route("/api/v1/campaigns/suggestions", get(campaigns::suggestions))
        .route(
            "/api/v1/campaigns/settings",
            get(campaigns::get_settings).put(campaigns::put_settings),
        )
        .route("/api/v1/campaigns/{id}", get(campaigns::get_campaign))
        .route(
            "/api/v1/campaigns/{id}/launch",
            post(campaigns::launch_campaign),
        )
        .route(
            "/api/v1/campaigns/{id}/status",
            post(campaigns::campaign_status),
        )
        .route(
            "/api/v1/campaigns/{id}/results",
            get(campaigns::campaign_results),
        )
        .route(
            "/api/v1/campaigns/{id}/members",
            get(campaigns::campaign_members),
        )
        .route(
            "/api/v1/audiences",
            get(audiences::list_audiences).post(audiences::create_audience),
        )
        .route("/api/v1/audiences/preview", post(audiences::preview))
        .route("/api/v1/audiences/fields", get(audiences::fields))
        .route("/api/v1/audiences/overlap", get(audiences::overlap))
        .route(
            "/api/v1/audiences/{id}",
            get(audiences::get_audience)
                .put(audiences::update_audience)
                .delete(audiences::archive_audience),
        )
        .route(
            "/api/v1/audiences/{id}/members",
            get(audiences::audience_members),
        )
        .route(
            "/api/v1/audiences/{id}/export",
            get(audiences::export_audience),
        )
        .route(
            "/api/v1/audiences/{id}/lookalike",
            post(audiences::lookalike),
        )
        .route("/api/v1/menu", get(menu::menu_engineering))
        .route("/api/v1/journeys", get(journeys::list_journeys))
        .route("/api/v1/journeys/{kind}", put(journeys::set_journey))
        .route(
            "/api/v1/journeys/{kind}/sends",
            get(journeys::journey_sends),
        )
        .route(
            "/api/v1/experiments",
            get(experiments::list_experiments).post(experiments::create_experiment),
        )
        .route(
            "/api/v1/experiments/{id}/results",
            get(experiments::experiment_results),
        )
        .route("/api/v1/service/diagnose", post(service::diagnose))
        .route("/api/v1/service/tickets", get(service::tickets))
        .route("/api/v1/audit", get(audit::audit_trail))
        .route(
            "/api/v1/privacy/customers/{id}/export",
            post(privacy::export_customer),
        )
        .route(
            "/api/v1/privacy/customers/{id}/erase",
            post(privacy::erase_customer),
        )
        .route("/api/v1/privacy/requests", get(privacy::list_requests))
        .route("/ws", get(ws::ws_handler))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/swagger-ui")
                .url("/api-docs/openapi.json", crate::openapi::ApiDoc::openapi()),
        )
}
