//! Files in and out, as the container's own user: one file written from `Data` frames, one
//! read into them, and directories as tar streams both ways. Reads honour the operation's
//! credits; writes are fed from the daemon's frames through a bounded queue to a thread of
//! their own, so a slow disk never stalls the channel.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use warmpool_agent_proto::msg::Ev;

use crate::out::{CHUNK, Ctx};

/// Where incoming `Data` of each operation goes.
#[derive(Default)]
pub struct Files {
    sinks: Mutex<HashMap<u32, SyncSender<Option<Vec<u8>>>>>,
}

/// Chunks from the daemon, read as a stream; `None` is the end.
struct Incoming(Receiver<Option<Vec<u8>>>, Vec<u8>, usize, bool);

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.2 >= self.1.len() {
            if self.3 {
                return Ok(0);
            }
            match self.0.recv() {
                Ok(Some(c)) => {
                    self.1 = c;
                    self.2 = 0;
                }
                Ok(None) => self.3 = true,
                Err(_) => return Err(std::io::Error::other("the transfer was abandoned")),
            }
        }
        let n = buf.len().min(self.1.len() - self.2);
        buf[..n].copy_from_slice(&self.1[self.2..self.2 + n]);
        self.2 += n;
        Ok(n)
    }
}

/// Sends what is written as `Data` frames under the operation's credits.
struct Outgoing<'a>(&'a Ctx, u32);

impl Write for Outgoing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK);
        if !self.0.credits.take(self.1, n) {
            return Err(std::io::Error::other("the transfer was abandoned"));
        }
        self.0.out.send(self.1, Ev::Data(buf[..n].to_vec()));
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Files {
    fn sink(&self, id: u32) -> Receiver<Option<Vec<u8>>> {
        let (tx, rx) = sync_channel(16);
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        rx
    }

    /// Bytes for operation `id`'s file or tar stream.
    pub fn data(&self, id: u32, d: Vec<u8>) {
        let tx = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(tx) = tx {
            let _ = tx.send(Some(d));
        }
    }

    /// The end of operation `id`'s bytes.
    pub fn end(&self, id: u32) {
        let tx = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(None);
        }
    }

    /// Abandon operation `id`'s transfer.
    pub fn abandon(&self, id: u32) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Write a file of `len` bytes at `path` from the `Data` that follows.
    pub fn write(self: &Arc<Self>, ctx: &Ctx, id: u32, path: String, mode: Option<u32>, len: u64) {
        let rx = self.sink(id);
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let r = write_file(
                &path,
                mode.unwrap_or(0o644),
                len,
                Incoming(rx, Vec::new(), 0, false),
            );
            ctx.out.send(
                id,
                match r {
                    Ok(()) => Ev::Done,
                    Err(e) => Ev::Failed(format!("{path}: {e}")),
                },
            );
        });
    }

    /// Unpack the tar stream that follows into `dir`.
    pub fn put_tar(self: &Arc<Self>, ctx: &Ctx, id: u32, dir: String) {
        let rx = self.sink(id);
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let r = std::fs::create_dir_all(&dir).and_then(|()| {
                let mut a = tar::Archive::new(Incoming(rx, Vec::new(), 0, false));
                a.set_preserve_permissions(true);
                a.unpack(&dir)
            });
            ctx.out.send(
                id,
                match r {
                    Ok(()) => Ev::Done,
                    Err(e) => Ev::Failed(format!("{dir}: {e}")),
                },
            );
        });
    }
}

fn write_file(path: &str, mode: u32, len: u64, mut body: impl Read) -> std::io::Result<()> {
    let p = std::path::Path::new(path);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)?;
    let n = std::io::copy(&mut (&mut body).take(len + 1), &mut f)?;
    if n != len {
        return Err(std::io::Error::other(format!(
            "the body had {n} bytes, {len} were announced"
        )));
    }
    Ok(())
}

/// Send the regular file at `path`: `Size`, `Data`…, `End`.
pub fn read(ctx: &Ctx, id: u32, path: String) {
    ctx.credits.open(id);
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let r = (|| {
            let meta = std::fs::metadata(&path)?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let mut f = std::fs::File::open(&path)?;
            ctx.out.send(id, Ev::Size(meta.len()));
            std::io::copy(&mut f, &mut Outgoing(&ctx, id))?;
            Ok(())
        })();
        ctx.out.send(
            id,
            match r {
                Ok(()) => Ev::End,
                Err(e) => Ev::Failed(format!("{path}: {e}")),
            },
        );
        ctx.credits.close(id);
    });
}

/// Send `path` (a directory, or one file) as a tar stream: `Data`…, `End`.
pub fn get_tar(ctx: &Ctx, id: u32, path: String) {
    ctx.credits.open(id);
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let r = (|| {
            let p = std::path::Path::new(&path);
            let name = p
                .file_name()
                .map_or_else(|| std::ffi::OsString::from("."), |n| n.to_os_string());
            let mut b = tar::Builder::new(Outgoing(&ctx, id));
            b.follow_symlinks(false);
            if std::fs::symlink_metadata(p)?.is_dir() {
                b.append_dir_all(&name, p)?;
            } else {
                b.append_path_with_name(p, &name)?;
            }
            b.into_inner()?.flush()
        })();
        ctx.out.send(
            id,
            match r {
                Ok(()) => Ev::End,
                Err(e) => Ev::Failed(format!("{path}: {e}")),
            },
        );
        ctx.credits.close(id);
    });
}
