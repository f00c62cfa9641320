//! The OpenAPI document's frame (title, the operator-key scheme, tags; the operations
//! come from the handlers' annotations, see [`super`]) and the interactive reference
//! that shows it: Swagger UI, compiled into the binary, at `/api/docs`.

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::ErrorBody;

/// Where the document is served (no key needed: it holds no secrets).
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
/// Where the reference page is served.
pub const REFERENCE_PATH: &str = "/api/docs";

/// The page loads only what the node serves: its own scripts, styles and images and
/// the document; "Try it out" calls this node. Swagger UI styles elements inline and
/// draws icons as `data:` URLs.
const REFERENCE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nexus",
        description = "The operator API of a Nexus node, and its public endpoints. \
            Operator endpoints take `Authorization: Bearer <operator key>` (`nexus \
            operator-key create`); every error outside `POST /auth/token` is \
            `{\"error\":{\"code\",\"message\",\"details\"?}}`."
    ),
    modifiers(&SecuritySchemes),
    security(("operator_key" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "tenants", description = "Tenants: create, rename, suspend, resume, delete"),
        (name = "events", description = "Events into agents' inboxes, and inboxes"),
        (name = "agents", description = "Agents: create, change, disable, rotate secrets, who is online, token revocation"),
        (name = "sources", description = "Webhook sources and their signing secrets"),
        (name = "jobs", description = "The job queue and its dead letters"),
        (name = "mirror", description = "ClickUp ↔ Slack mappings, aliases, identities"),
        (name = "operator-keys", description = "Operator API keys (`admin`)"),
        (name = "audit", description = "The audit log of operator actions"),
        (name = "usage", description = "Agents' token usage and its cost, by day, model or agent"),
        (name = "node", description = "Probes and agent tokens: no operator key"),
    )
)]
struct Frame;

/// `operator_key`, which every `/api` operation requires unless it says otherwise;
/// `client_basic`, one way an agent authenticates to `POST /auth/token`; `agent_token`,
/// an agent's access token, for the endpoints agents call.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An operator key (`nexus operator-key create`): scopes read, write, admin",
            ))
            .build();
        components.add_security_scheme("operator_key", SecurityScheme::Http(bearer));
        let basic = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some("An agent's client id and secret"))
            .build();
        components.add_security_scheme("client_basic", SecurityScheme::Http(basic));
        let agent = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An agent's access token (`POST /auth/token`)"))
            .build();
        components.add_security_scheme("agent_token", SecurityScheme::Http(agent));
    }
}

/// The document before any operation is added.
pub fn frame() -> Document {
    Frame::openapi()
}

/// `GET /api/openapi.json` and the reference page at `/api/docs`, its assets compiled in.
pub fn reference<S: Clone + Send + Sync + 'static>(doc: Document) -> Router<S> {
    // No validator badge: it would send the document to validator.swagger.io.
    let config = Config::default().validator_url("none");
    let ui: Router<S> = SwaggerUi::new(REFERENCE_PATH)
        .url(DOCUMENT_PATH, doc)
        .config(config)
        .into();
    ui.layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(REFERENCE_CSP),
    ))
}
