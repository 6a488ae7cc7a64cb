//! `GET /openapi.json`: the API's OpenAPI 3.1 document.
//!
//! Each handler describes itself with `#[utoipa::path]` beside its code, and its bodies are the
//! handlers' own serde types (`ToSchema`), so the document cannot drift from what is served.
//! Each route's error answers come from the codes it names ([`crate::code::route_errors!`]),
//! described by the one table of codes ([`crate::code`]). What applies to many routes at once
//! is added here, in one place, by [`cross_cutting`]: the bearer scheme on `/v1`, the errors
//! the router's layers answer on many routes (a bad body, a missing token, a `Host` or
//! `Origin` refused by the web-page guards, a POST that is not JSON, a body too large), merged
//! with each route's own codes, and the links from a new lease to the routes that take its id,
//! which stateful clients and testers (schemathesis) follow.
//!
//! This is the one module that knows every route; no route module depends on it.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::code::{CODES_EXTENSION, Code};
use crate::error::{ErrorBody, ErrorDetail};
use crate::{
    admin, archive, engines, events, exec, files, history, leases, plugins, pools, resources,
    service, stream, tenants, terminal,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warmpool",
        description = "Leases of pre-warmed Docker containers. Every error is \
            `{\"error\":{\"code\",\"message\"}}`; when the daemon has tenants (or a token), \
            every `/v1` route needs `Authorization: Bearer <token>`: a tenant's token opens its \
            own leases and pools (an admin's, everything), and the `lease_token` of an acquire's \
            answer opens that lease's routes alone. The API is for programs, not web pages: every \
            route answers 421 `host_not_allowed` to a `Host` the daemon does not answer to \
            (`localhost` and IP addresses on its port, and `server.allowed_hosts`), and 403 \
            `forbidden_origin` to a request from another origin; every POST must send \
            `Content-Type: application/json`, even with an empty body (else 415); no answer \
            carries CORS headers.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        leases::acquire,
        leases::list,
        leases::show,
        leases::release,
        leases::renew,
        resources::resize,
        crate::hibernate::suspend,
        crate::hibernate::resume,
        exec::exec,
        stream::exec_stream,
        terminal::exec_ws,
        terminal::pty,
        files::put_file,
        files::get_file,
        archive::put_archive,
        archive::get_archive,
        pools::list,
        pools::show,
        pools::warm_up,
        history::route::list,
        pools::scale,
        pools::unscale,
        engines::list,
        events::stream,
        plugins::list,
        admin::reload,
        tenants::list,
        service::healthz,
        service::readyz,
        service::metrics_text,
        service::status_page,
        serve,
    ),
    components(schemas(ErrorBody, ErrorDetail, terminal::Start, terminal::Size)),
    tags(
        (name = "leases", description = "Take, use, renew and give back a container"),
        (name = "files", description = "Files in a leased container, streamed both ways"),
        (name = "pools", description = "Pool state, its history over the last hour, warm-up and scale overrides"),
        (name = "engines", description = "The container engines the daemon drives"),
        (name = "plugins", description = "Policy plugins (WebAssembly) and their state"),
        (name = "events", description = "The lifecycle as Server-Sent Events"),
        (name = "admin", description = "Operator actions"),
        (name = "tenants", description = "Tenants, their quotas and their use"),
        (name = "service", description = "Health, readiness, metrics and the status page"),
    )
)]
struct ApiDoc;

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The OpenAPI document, with its cross-cutting parts.
pub fn document() -> Value {
    // Serialising the derived document cannot fail (its maps are keyed by strings); the unit
    // tests below build it, so a change that broke it would fail them, not serve `{}`.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    cross_cutting(&mut doc);
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "service", operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1), served without auth", body = serde_json::Value)))]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Add to every operation what the handlers' annotations leave to one place.
fn cross_cutting(doc: &mut Value) {
    doc["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "A tenant's token (`server.tenants`, or `server.auth_token_env` for one admin), or a lease token from an acquire, which opens that lease's routes alone; required on `/v1` when the daemon has tenants, else not needed",
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let has_body = op.contains_key("requestBody");
            let json_body = op
                .get("requestBody")
                .and_then(|b| b["content"].get("application/json"))
                .is_some();
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            // The route's own codes, as its error responses carry them ...
            let mut codes: Vec<Code> = responses
                .values()
                .filter_map(|r| r.get(CODES_EXTENSION)?.as_array())
                .flatten()
                .map(|name| {
                    name.as_str()
                        .and_then(Code::from_name)
                        .expect("a code of the table")
                })
                .collect();
            // ... and those of the router's layers in front of it.
            if path.starts_with("/v1/") {
                // A bad path or query (axum's extractors), and the token check (`auth.rs`).
                codes.extend([Code::BadRequest, Code::Unauthorized]);
                // Outside a lease's routes, `auth.rs` refuses a lease token (and a tenant, on
                // the admin routes); a lease's routes answer 404 to anyone but its own.
                if !path.starts_with("/v1/leases/{id}") {
                    codes.push(Code::Forbidden);
                }
            }
            // The web-page guards (`web.rs`) answer before routing, on every route.
            codes.extend([Code::HostNotAllowed, Code::ForbiddenOrigin]);
            if method == "post" || json_body {
                codes.push(Code::UnsupportedMediaType);
            }
            if has_body {
                codes.push(Code::PayloadTooLarge);
            }
            for (status, resp) in crate::code::responses(&codes) {
                let mut resp = serde_json::to_value(resp).expect("a response is JSON");
                if let Some(r) = resp.as_object_mut() {
                    r.remove(CODES_EXTENSION);
                }
                responses.insert(status, resp);
            }
            if path.starts_with("/v1/") {
                op.insert("security".into(), json!([{ "bearer": [] }, {}]));
            }
        }
    }
    // An exec takes its stdin as text or as base64, not both.
    if let Some(exec) = doc["components"]["schemas"].get_mut("ExecBody") {
        exec["not"] = json!({
            "required": ["stdin", "stdin_b64"],
            "properties": { "stdin": { "type": "string" }, "stdin_b64": { "type": "string" } },
        });
    }
    // A scale names at least one size (utoipa's `min_properties` writes `maxProperties`).
    if let Some(scale) = doc["components"]["schemas"].get_mut("ScaleBody") {
        scale["minProperties"] = json!(1);
    }
    // So does a resize, cpus or memory.
    if let Some(resize) = doc["components"]["schemas"].get_mut("ResizeBody") {
        resize["minProperties"] = json!(1);
    }
    // Each Server-Sent Event: its kind, and an Event as JSON in `data` (a `lagged` one too).
    if let Some(sse) = doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
        .get_mut("text/event-stream")
    {
        sse["schema"] = json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": { "type": "string", "description": "The event's kind" },
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": { "$ref": "#/components/schemas/Event" },
                },
            },
        });
    }
    // A new lease's id is what every lease route takes.
    let by_id = [
        ("ShowLease", "show_lease"),
        ("Exec", "exec"),
        ("Renew", "renew"),
        ("Suspend", "suspend"),
        ("Resume", "resume"),
        ("PutFile", "put_file"),
        ("GetFile", "get_file"),
        ("Release", "release"),
        ("Resize", "resize"),
    ];
    let links: serde_json::Map<String, Value> = by_id
        .iter()
        .map(|(name, op)| {
            (
                (*name).to_string(),
                json!({
                    "operationId": op,
                    "parameters": { "id": "$response.body#/lease_id" },
                }),
            )
        })
        .collect();
    if let Some(created) = doc["paths"]["/v1/leases"]["post"]["responses"].get_mut("201") {
        created["links"] = Value::Object(links);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_a_tag_and_json_errors() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_string()), "{id} is not unique");
                assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()));
                for (status, resp) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            resp["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                    if status == "429" || status == "503" {
                        assert!(resp["headers"]["Retry-After"].is_object());
                    }
                }
            }
        }
        assert!(ids.len() >= 20, "{ids:?}");
    }

    #[test]
    fn every_operation_documents_the_web_page_guards() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let r = &op["responses"];
                let what = format!("{method} {path}");
                assert!(
                    r["421"]["description"]
                        .as_str()
                        .unwrap()
                        .contains("host_not_allowed"),
                    "{what}"
                );
                assert!(
                    r["403"]["description"]
                        .as_str()
                        .unwrap()
                        .contains("forbidden_origin"),
                    "{what}"
                );
                if method == "post" {
                    assert!(r["415"].is_object(), "{what}");
                    assert!(
                        op["requestBody"]["content"]["application/json"].is_object(),
                        "{what}"
                    );
                }
            }
        }
    }

    #[test]
    fn what_the_derive_cannot_say_survives_into_the_document() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let engine = &schemas["AcquireBody"]["properties"]["engine"];
        assert_eq!(engine["propertyNames"]["maxLength"], 128, "{engine}");
        assert_eq!(engine["maxProperties"], 32, "{engine}");
        let cmd = &schemas["ExecBody"]["properties"]["cmd"];
        assert_eq!(cmd["prefixItems"][0]["minLength"], 1, "{cmd}");
        assert!(schemas["ExecBody"]["not"].is_object());
        // A scale names at least one size.
        assert_eq!(
            schemas["ScaleBody"]["minProperties"], 1,
            "{}",
            schemas["ScaleBody"]
        );
        let sse =
            &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
        assert_eq!(
            sse["schema"]["properties"]["data"]["contentMediaType"],
            "application/json"
        );
    }

    #[test]
    fn the_links_of_a_new_lease_name_real_operations() {
        let doc = document();
        let links = doc["paths"]["/v1/leases"]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap();
        let ids: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| METHODS.iter().filter_map(|m| item.get(*m)))
            .map(|op| op["operationId"].as_str().unwrap().to_string())
            .collect();
        for link in links.values() {
            assert!(ids.contains(&link["operationId"].as_str().unwrap().to_string()));
        }
    }

    /// The operation of this id.
    fn operation<'a>(doc: &'a Value, id: &str) -> &'a Value {
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| METHODS.iter().filter_map(|m| item.get(*m)))
            .find(|op| op["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
    }

    /// No error response is written by hand: each is the table's, naming codes of its own
    /// status and nothing else.
    #[test]
    fn every_error_response_is_the_code_tables() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let what = format!("{method} {path} {status}");
                    assert!(resp.get(CODES_EXTENSION).is_none(), "{what}");
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let named: Vec<Code> = Code::ALL
                        .iter()
                        .copied()
                        .filter(|c| {
                            resp["description"].as_str().unwrap().contains(&format!(
                                "`{}`: {}",
                                c.as_str(),
                                c.meaning()
                            ))
                        })
                        .collect();
                    assert!(!named.is_empty(), "{what}: {resp}");
                    for c in &named {
                        assert_eq!(c.status().as_str(), status, "{what}: {c}");
                    }
                    let rebuilt = serde_json::to_value(crate::code::responses(&named)).unwrap();
                    assert_eq!(
                        resp["description"], rebuilt[status]["description"],
                        "{what}"
                    );
                }
            }
        }
    }

    /// Each route that answers a core error documents every code that error can become, with
    /// its status; so do the routes whose handlers answer a code of their own.
    #[test]
    fn each_route_documents_the_codes_it_can_answer() {
        use crate::core_errors::{
            ACQUIRE_CODES, LEASE_CODES, LOOKUP_CODES, SCALE_CODES, UNSCALE_CODES, WARM_UP_CODES,
        };
        let doc = document();
        let ws: Vec<Code> = [LOOKUP_CODES, &[Code::ContainerGone, Code::UpgradeRequired]].concat();
        let routes: [(&str, &[Code]); 23] = [
            ("acquire", ACQUIRE_CODES),
            ("show_lease", LOOKUP_CODES),
            ("renew", LOOKUP_CODES),
            ("suspend", LEASE_CODES),
            ("resume", LEASE_CODES),
            ("release", LEASE_CODES),
            ("exec", LEASE_CODES),
            ("exec_stream", LEASE_CODES),
            ("put_file", LEASE_CODES),
            ("get_file", LEASE_CODES),
            ("put_archive", LEASE_CODES),
            ("get_archive", LEASE_CODES),
            ("exec_ws", &ws),
            ("pty", &ws),
            ("warm_up", WARM_UP_CODES),
            ("show_pool", &[Code::UnknownPool]),
            ("history", &[Code::UnknownPool]),
            ("scale_pool", SCALE_CODES),
            ("unscale_pool", UNSCALE_CODES),
            ("readyz", &[Code::NotReady, Code::EngineUnavailable]),
            (
                "admin_reload",
                &[Code::ConfigRejected, Code::NotImplemented],
            ),
            ("put_file", &[Code::PayloadTooLarge]),
            ("put_archive", &[Code::PayloadTooLarge]),
        ];
        for (id, codes) in routes {
            let op = operation(&doc, id);
            for c in codes {
                let status = c.status();
                let resp = &op["responses"][status.as_str()];
                let description = resp["description"].as_str().unwrap_or_else(|| {
                    panic!("{id}: {c} is answered {status}, which is not documented")
                });
                assert!(
                    description.contains(&format!("`{c}`")),
                    "{id} {status}: {description}"
                );
            }
        }
    }
}
