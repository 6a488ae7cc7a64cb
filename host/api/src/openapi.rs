//! `GET /openapi.json`: the API's OpenAPI 3.1 document.
//!
//! Each handler describes itself with `#[utoipa::path]` beside its code, and its bodies are the
//! handlers' own serde types (`ToSchema`), so the document cannot drift from what is served.
//! What applies to many routes at once is added here, in one place, by [`cross_cutting`]:
//! the bearer scheme on `/v1`, the errors any route can answer (a bad body, a missing token, a
//! `Host` or `Origin` refused by the web-page guards, a POST that is not JSON),
//! `Retry-After` on 429 and 503, and the links from a new lease to the routes that take its id,
//! which stateful clients and testers (schemathesis) follow.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::{engines, events, leases, pools};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warmpool",
        description = "Leases of pre-warmed Docker containers. Every error is \
            `{\"error\":{\"code\",\"message\"}}`; when the daemon has a token, every `/v1` route \
            needs `Authorization: Bearer <token>`. The API is for programs, not web pages: every \
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
        leases::exec,
        crate::stream::exec_stream,
        crate::terminal::exec_ws,
        crate::terminal::pty,
        leases::put_file,
        leases::get_file,
        crate::archive::put_archive,
        crate::archive::get_archive,
        pools::list,
        pools::show,
        pools::warm_up,
        engines::list,
        events::stream,
        crate::plugins,
        crate::admin_reload,
        crate::healthz,
        crate::readyz,
        crate::metrics_text,
        crate::status_page,
        serve,
    ),
    components(schemas(ErrorBody, ErrorDetail, crate::terminal::Start, crate::terminal::Size)),
    tags(
        (name = "leases", description = "Take, use, renew and give back a container"),
        (name = "files", description = "Files in a leased container, streamed both ways"),
        (name = "pools", description = "Pool state and warm-up"),
        (name = "engines", description = "The container engines the daemon drives"),
        (name = "plugins", description = "Policy plugins (WebAssembly) and their state"),
        (name = "events", description = "The lifecycle as Server-Sent Events"),
        (name = "admin", description = "Operator actions"),
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

/// A schema written as JSON, for what the derive cannot say (`propertyNames`, `prefixItems`).
/// Every such schema is a constant of this crate, read by the unit tests below.
pub(crate) fn schema(v: Value) -> utoipa::openapi::Schema {
    serde_json::from_value(v).expect("a schema constant of the API crate")
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    })
}

/// Add to every operation what the handlers' annotations leave to one place.
fn cross_cutting(doc: &mut Value) {
    doc["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "`server.token`; required on `/v1` when the daemon has one, else not needed",
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
            if path.starts_with("/v1/") {
                responses.entry("400").or_insert_with(|| {
                    error_response("`bad_request`: a bad path, query or body, with the reason")
                });
                responses.entry("401").or_insert_with(|| {
                    error_response("`unauthorized`: the token is missing or wrong")
                });
            }
            // The web-page guards (`web.rs`) answer before routing, on every route.
            responses.entry("421").or_insert_with(|| {
                error_response(
                    "`host_not_allowed`: the `Host` is not one this daemon answers to (DNS \
                     rebinding guard); `server.allowed_hosts` adds names",
                )
            });
            responses.entry("403").or_insert_with(|| {
                error_response(
                    "`forbidden_origin`: the request comes from a web page of another origin \
                     (or `Origin: null`)",
                )
            });
            if method == "post" {
                responses.entry("415").or_insert_with(|| {
                    error_response(
                        "`unsupported_media_type`: a POST must send `Content-Type: \
                         application/json`, even with an empty body",
                    )
                });
            }
            if has_body {
                responses.entry("413").or_insert_with(|| {
                    error_response("`payload_too_large`: the body is over the server's limit")
                });
            }
            if json_body {
                responses.entry("415").or_insert_with(|| {
                    error_response("`unsupported_media_type`: the body is not `application/json`")
                });
            }
            for (status, resp) in responses.iter_mut() {
                if status == "429" || status == "503" {
                    resp["headers"]["Retry-After"] = json!({
                        "description": "Whole seconds to wait before trying again (rounded up)",
                        "schema": { "type": "integer", "minimum": 1 },
                    });
                }
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
        ("PutFile", "put_file"),
        ("GetFile", "get_file"),
        ("Release", "release"),
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
                    if status == "429" {
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
}
