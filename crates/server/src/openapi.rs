//! The OpenAPI document: every operation of `routes`, its schemas and the bearer security scheme.

use utoipa::ToSchema;

use crate::error::ErrorBody;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "c360 API",
        description = "Customer profiles (客户画像) of the hot dog chain: profiles, segments, predictions, live ingestion. Send your key as `Authorization: Bearer KEY`."
    ),
    paths(
        crate::routes::meta::me,
        crate::routes::meta::health,
        crate::routes::overview::overview,
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
        crate::routes::audit::audit_trail
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
        crate::routes::campaigns::StatusChange,
        crate::routes::campaigns::Settings,
        crate::routes::service::DiagnoseRequest
    ))
)]
pub struct ApiDoc;
