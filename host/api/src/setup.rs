//! A lease's own environment, secrets, working directory and files, as the acquire body gives
//! them: checked against their bounds (with the field's path in the error, never a secret's
//! value), and turned into the core's [`LeaseSetup`].

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use warmpool_core::{LeaseSetup, Secret, SetupFile};

use crate::ApiError;
use crate::code::Code;

/// Most variables (env and secrets each).
const MAX_VARS: usize = 256;
/// Longest variable name.
const MAX_NAME: usize = 256;
/// Longest variable value.
const MAX_VALUE: usize = 32 << 10;
/// Most files.
const MAX_FILES: usize = 64;
/// Most bytes of all files together.
const MAX_FILE_BYTES: usize = 1 << 20;

/// A secret's value as the body carries it: never printed (its `Debug` is `<secret>`).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// One file of the acquire body: text, or bytes in base64 with an optional mode.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FileContent {
    /// The file's content as text (UTF-8).
    Text(String),
    /// The file's bytes in base64, and its permission bits.
    Bytes {
        /// The content, base64 (standard alphabet, padding optional).
        content_b64: String,
        /// Permission bits (e.g. 493 for 0755); default 420 (0644).
        mode: Option<u32>,
    },
}

pub(crate) fn env_schema() -> utoipa::openapi::Schema {
    crate::body::schema(serde_json::json!({
        "type": "object",
        "maxProperties": MAX_VARS,
        "propertyNames": { "type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": "^[^=\\u0000]+$" },
        "additionalProperties": { "type": "string", "maxLength": MAX_VALUE },
    }))
}

pub(crate) fn files_schema() -> utoipa::openapi::Schema {
    crate::body::schema(serde_json::json!({
        "type": "object",
        "maxProperties": MAX_FILES,
        "propertyNames": { "type": "string", "pattern": "^/" },
        "additionalProperties": {
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "required": ["content_b64"],
                    "properties": {
                        "content_b64": { "type": "string" },
                        "mode": { "type": "integer", "minimum": 0, "maximum": 4095 },
                    },
                    "additionalProperties": false,
                },
            ]
        },
    }))
}

fn vars<'a>(
    field: &str,
    v: impl ExactSizeIterator<Item = (&'a String, &'a str)>,
) -> Result<(), ApiError> {
    if v.len() > MAX_VARS {
        return Err(ApiError::bad_request(format!(
            "{field}: at most {MAX_VARS} variables"
        )));
    }
    for (k, val) in v {
        if k.is_empty() || k.chars().count() > MAX_NAME || k.contains(['=', '\0']) {
            return Err(ApiError::bad_request(format!(
                "{field}: a variable's name must be 1-{MAX_NAME} characters without '=' or NUL"
            )));
        }
        // The message names the variable, never its value.
        if val.len() > MAX_VALUE || val.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "{field}.{k}: a value is at most {MAX_VALUE} bytes, without NUL"
            )));
        }
    }
    Ok(())
}

fn absolute(field: &str, p: &str) -> Result<(), ApiError> {
    warmpool_core::checked_path(p)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// The acquire body's set-up (its `env`, `secrets`, `workdir` and `files`), checked; `None`
/// when it asks for none.
pub(crate) fn lease_setup(
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, SecretValue>,
    workdir: Option<&str>,
    files: &BTreeMap<String, FileContent>,
) -> Result<Option<Arc<LeaseSetup>>, ApiError> {
    vars("env", env.iter().map(|(k, v)| (k, v.as_str())))?;
    vars("secrets", secrets.iter().map(|(k, v)| (k, v.0.as_str())))?;
    if let Some(w) = workdir
        && (!w.starts_with('/') || w.contains('\0') || w.split('/').any(|s| s == ".."))
    {
        return Err(ApiError::bad_request(
            "workdir must be an absolute path without '..' or NUL",
        ));
    }
    if files.len() > MAX_FILES {
        return Err(ApiError::bad_request(format!(
            "files: at most {MAX_FILES} files"
        )));
    }
    let mut setup_files = Vec::new();
    let mut total = 0usize;
    for (path, f) in files {
        absolute(&format!("files[{path:?}]"), path)?;
        let (content, mode) = match f {
            FileContent::Text(t) => (Bytes::from(t.clone().into_bytes()), None),
            FileContent::Bytes { content_b64, mode } => {
                let b = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(content_b64.trim_end_matches('='))
                    .map_err(|e| {
                        ApiError::bad_request(format!("files[{path:?}].content_b64: {e}"))
                    })?;
                if mode.is_some_and(|m| m > 0o7777) {
                    return Err(ApiError::bad_request(format!(
                        "files[{path:?}].mode: at most 4095 (0o7777)"
                    )));
                }
                (Bytes::from(b), *mode)
            }
        };
        total += content.len();
        setup_files.push(SetupFile {
            path: path.clone(),
            content,
            mode,
        });
    }
    if total > MAX_FILE_BYTES {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("files: at most {MAX_FILE_BYTES} bytes in all"),
        ));
    }
    let setup = LeaseSetup {
        env: env.clone(),
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.0.clone())))
            .collect(),
        workdir: workdir.map(str::to_owned),
        files: setup_files,
    };
    Ok((!setup.is_empty()).then(|| Arc::new(setup)))
}
