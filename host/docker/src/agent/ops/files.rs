//! Files and directories over the channel, as the container's own user, and a lease's
//! environment, secrets and files applied before it is handed out.

use bytes::Bytes;
use futures_util::StreamExt;
use warmpool_agent_proto::msg::{Ev, LeaseEnv, Req};
use warmpool_core::{BackendError, ByteStream, FileBody, LeaseSetup};

use super::{ANSWER_WITHIN, done, dropped, failed, send_bytes};
use crate::agent::channel::{Channel, OpEvents};

/// Write `file` at `path`, as the container's user.
pub async fn put_file(ch: &Channel, path: &str, mut file: FileBody) -> Result<(), BackendError> {
    warmpool_core::checked_path(path)?;
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(
            id,
            Req::WriteFile {
                path: path.to_string(),
                mode: None,
                len: file.len,
            },
        )
        .await?;
        while let Some(chunk) = file.body.next().await {
            match chunk {
                Ok(c) => send_bytes(ch, id, &c, Req::Data).await?,
                Err(e) => {
                    let _ = ch.send(id, Req::Kill).await;
                    return Err(e);
                }
            }
        }
        ch.send(id, Req::End).await?;
        done(ch, &mut rx, "write file").await
    }
    .await;
    ch.close_op(id);
    r
}

/// Unpack the tar stream `body` into directory `dir`.
pub async fn put_tar(ch: &Channel, dir: &str, mut body: ByteStream) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(
            id,
            Req::PutTar {
                dir: dir.to_string(),
            },
        )
        .await?;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => send_bytes(ch, id, &c, Req::Data).await?,
                Err(e) => {
                    let _ = ch.send(id, Req::Kill).await;
                    return Err(e);
                }
            }
        }
        ch.send(id, Req::End).await?;
        done(ch, &mut rx, "unpack").await
    }
    .await;
    ch.close_op(id);
    r
}

/// A stream of an operation's `Data` until `End`, granting credit as it is read.
fn data_stream(ch: std::sync::Arc<Channel>, id: u32, rx: OpEvents) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (ch, rx, false),
        move |(ch, mut rx, done)| async move {
            if done {
                ch.close_op(id);
                return None;
            }
            match rx.recv().await {
                Some(Ev::Data(d)) => {
                    let _ = ch.send(id, Req::Credit(d.len() as u32)).await;
                    Some((Ok(Bytes::from(d)), (ch, rx, false)))
                }
                Some(Ev::End) => {
                    ch.close_op(id);
                    None
                }
                Some(Ev::Failed(why)) => Some((Err(BackendError::Invalid(why)), (ch, rx, true))),
                Some(other) => Some((
                    Err(BackendError::Invalid(format!(
                        "unexpected answer {other:?}"
                    ))),
                    (ch, rx, true),
                )),
                None => Some((Err(dropped(&ch)), (ch, rx, true))),
            }
        },
    ))
}

/// Read the regular file at `path`.
pub async fn get_file(ch: std::sync::Arc<Channel>, path: &str) -> Result<FileBody, BackendError> {
    warmpool_core::checked_path(path)?;
    let (id, mut rx) = ch.open_op();
    if let Err(e) = ch.send(id, Req::ReadFile(path.to_string())).await {
        ch.close_op(id);
        return Err(e);
    }
    match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
        Ok(Some(Ev::Size(len))) => Ok(FileBody {
            len,
            body: data_stream(ch, id, rx),
        }),
        Ok(Some(Ev::Failed(why))) => {
            ch.close_op(id);
            Err(if why.contains("No such file") {
                BackendError::NotFound {
                    what: "file",
                    subject: path.into(),
                }
            } else {
                BackendError::Invalid(why)
            })
        }
        Ok(other) => {
            ch.close_op(id);
            Err(other.map_or_else(
                || dropped(&ch),
                |o| failed(&ch, "read file", format!("unexpected answer {o:?}")),
            ))
        }
        Err(_) => {
            ch.close_op(id);
            Err(BackendError::Unavailable(
                "the agent did not start the read in time".into(),
            ))
        }
    }
}

/// `path` (a directory or a file) as a tar stream.
pub async fn get_tar(ch: std::sync::Arc<Channel>, path: &str) -> Result<ByteStream, BackendError> {
    let (id, rx) = ch.open_op();
    if let Err(e) = ch.send(id, Req::GetTar(path.to_string())).await {
        ch.close_op(id);
        return Err(e);
    }
    Ok(data_stream(ch, id, rx))
}

/// The lease's environment and files, applied before the lease is handed out: the requests
/// go out together, then every answer is awaited.
pub async fn lease_setup(ch: &Channel, setup: &LeaseSetup) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let env = LeaseEnv {
        env: setup
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        secrets: setup
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        workdir: setup.workdir.clone(),
    };
    let t0 = std::time::Instant::now();
    let r = async {
        ch.send(id, Req::SetLease(env)).await?;
        let mut writes = Vec::new();
        for f in &setup.files {
            let (fid, frx) = ch.open_op();
            writes.push((fid, frx));
            ch.send(
                fid,
                Req::WriteFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    len: f.content.len() as u64,
                },
            )
            .await?;
            send_bytes(ch, fid, &f.content, Req::Data).await?;
            ch.send(fid, Req::End).await?;
        }
        done(ch, &mut rx, "set the lease's environment").await?;
        tracing::trace!(container = %ch.container, us = t0.elapsed().as_micros() as u64, "lease env set");
        for (fid, mut frx) in writes {
            let r = done(ch, &mut frx, "write a lease file").await;
            ch.close_op(fid);
            r?;
        }
        Ok(())
    }
    .await;
    ch.close_op(id);
    r
}
