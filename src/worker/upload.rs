//! Uploading one finished session file: a pass to sum its usage, then the transcript
//! inline (small UTF-8 files) or in gzip parts read one at a time, so memory stays at
//! about one part whatever the file's size. The session id is derived from the file,
//! so a repeat (after a crash, or by another run) meets 409 and finishes the upload the
//! node already holds instead of storing a second session.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::client::{CallError, Node};
use super::transcript::{self, Summary};

/// The node's bound on a transcript sent whole, and on each part.
pub const PART_BYTES: u64 = 1 << 20;
/// The node's bound on the number of parts.
const MAX_PARTS: u64 = 1024;

/// Ids of sessions whose file does not name one: stable per host and path.
const NAMESPACE: Uuid = Uuid::from_u128(0x6e65_7875_732d_776f_726b_6572_2d73_6573);

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("cannot read the session file: {0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Unfit(String),
}

impl UploadError {
    /// Whether a later attempt can succeed (else the session is parked at once).
    pub fn transient(&self) -> bool {
        match self {
            UploadError::Call(e) => e.transient(),
            // The file may be back (a remounted directory); attempts are bounded anyway.
            UploadError::Read(_) => true,
            UploadError::Unfit(_) => false,
        }
    }

    pub fn unreachable(&self) -> bool {
        matches!(self, UploadError::Call(CallError::Unreachable(_)))
    }
}

/// A session file the scan found finished.
#[derive(Clone, Debug)]
pub struct Finished {
    pub path: PathBuf,
    pub len: u64,
    pub modified: SystemTime,
    pub format: &'static str,
}

impl Finished {
    pub fn key(&self) -> String {
        self.path.display().to_string()
    }

    /// The file's name when it is a UUID (Claude Code names transcripts by their
    /// session), else one derived from the host and the path.
    pub fn session_id(&self, host: &str) -> Uuid {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                Uuid::new_v5(&NAMESPACE, format!("{host}:{}", self.key()).as_bytes())
            })
    }
}

#[derive(Deserialize)]
struct Shown {
    status: String,
}

/// Uploads `file` as session `id`; Ok once the node holds it complete.
pub async fn upload(node: &Node, file: &Finished, id: Uuid, host: &str) -> Result<(), UploadError> {
    if file.len > PART_BYTES * MAX_PARTS {
        return Err(UploadError::Unfit(format!(
            "{} bytes is over the node's {} parts of {PART_BYTES} bytes",
            file.len, MAX_PARTS
        )));
    }
    let summary = summarize(file).await?;
    let mut body = announcement(file, id, host, &summary);
    let parts = file.len.div_ceil(PART_BYTES);
    let inline = match file.len <= PART_BYTES {
        true => read_part(file.path.clone(), 0, file.len)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        false => None,
    };
    let whole = inline.is_some();
    match inline {
        Some(text) => body["transcript"] = text.into(),
        None => body["parts"] = parts.into(),
    }
    let compressed = gzip(&serde_json::to_vec(&body).map_err(std::io::Error::other)?)?;
    let created = node
        .call(Method::POST, "/api/sessions", |r| {
            r.header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, "gzip")
                .body(compressed.clone())
        })
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
            let path = format!("/api/sessions/{id}");
            let shown: Shown = node.call_json(Method::GET, &path, |r| r).await?;
            if shown.status == "complete" || whole {
                return Ok(());
            }
            tracing::info!(path = %file.key(), session_id = %id, "finishing an upload the node already started");
        }
        Err(e) => return Err(e.into()),
    }
    if !whole {
        send_parts(node, file, id, parts).await?;
    }
    Ok(())
}

async fn summarize(file: &Finished) -> Result<Summary, UploadError> {
    let (path, len, format) = (file.path.clone(), file.len, file.format);
    tokio::task::spawn_blocking(move || {
        let mut parser = transcript::parser(format)
            .ok_or_else(|| UploadError::Unfit(format!("no session format {format:?}")))?;
        Ok(transcript::summarize(&path, len, parser.as_mut())?)
    })
    .await
    .map_err(|e| UploadError::Read(std::io::Error::other(e)))?
}

/// `POST /api/sessions`' body without the transcript.
fn announcement(file: &Finished, id: Uuid, host: &str, summary: &Summary) -> serde_json::Value {
    let modified: DateTime<Utc> = file.modified.into();
    let started = summary.started.unwrap_or(modified);
    let ended = summary.ended.unwrap_or(modified).max(started);
    let source = transcript::parser(file.format).map_or("custom", |p| p.source());
    json!({
        "session_id": id,
        "source": source,
        "started_at": started.to_rfc3339(),
        "ended_at": ended.to_rfc3339(),
        "usage": summary.usage.values().collect::<Vec<_>>(),
        "metadata": {
            "host": host,
            "path": file.key(),
            "bytes": file.len,
            "skipped_lines": summary.skipped_lines,
        },
    })
}

async fn send_parts(node: &Node, file: &Finished, id: Uuid, parts: u64) -> Result<(), UploadError> {
    for n in 1..=parts {
        let offset = (n - 1) * PART_BYTES;
        let len = PART_BYTES.min(file.len - offset);
        let path = file.path.clone();
        // Read and compressed off the runtime's threads.
        let compressed = tokio::task::spawn_blocking(move || gzip(&read_at(&path, offset, len)?))
            .await
            .map_err(std::io::Error::other)??;
        let path = format!("/api/sessions/{id}/parts/{n}");
        let put = node
            .call(Method::PUT, &path, |r| {
                r.header(header::CONTENT_ENCODING, "gzip")
                    .body(compressed.clone())
            })
            .await;
        match put {
            Ok(_) => {}
            // Complete already: an earlier attempt finished it.
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let path = format!("/api/sessions/{id}/complete");
    node.call(Method::POST, &path, |r| r).await?;
    Ok(())
}

/// `len` bytes at `offset`, read off the runtime's threads.
async fn read_part(path: PathBuf, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || read_at(&path, offset, len))
        .await
        .map_err(std::io::Error::other)?
}

fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file shrank since it was scanned",
        ));
    }
    Ok(buf)
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}
