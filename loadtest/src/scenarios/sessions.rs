//! `sessions`: `POST /api/sessions` from `clients` closed-loop clients (each agent
//! uploads its own sessions, with its token) for `duration`: sessions stored per
//! second, and the time to the 201.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::net::http_client;
use crate::report::{Latency, histogram, num, record_us, table};
use crate::server::{Fixture, Server};

#[derive(Clone, Debug)]
pub struct SessionsOpts {
    pub clients: usize,
    pub duration: Duration,
    /// Transcript size of each session.
    pub transcript_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionsReport {
    pub clients: usize,
    pub transcript_bytes: usize,
    pub seconds: f64,
    pub stored: u64,
    pub refused: u64,
    pub stored_per_s: f64,
    /// Send → 201.
    pub latency: Latency,
}

impl SessionsReport {
    pub fn table(&self) -> String {
        table(
            "sessions (POST /api/sessions)",
            &[
                ("clients", self.clients.to_string()),
                ("transcript", format!("{} bytes", self.transcript_bytes)),
                (
                    "stored",
                    format!("{} ({} refused)", self.stored, self.refused),
                ),
                ("stored/s", num(self.stored_per_s)),
                ("201 latency", self.latency.line()),
            ],
        )
    }
}

pub async fn run(
    server: &Server,
    fixture: &Fixture,
    opts: &SessionsOpts,
) -> Result<SessionsReport> {
    let url = format!("{}/api/sessions", server.http);
    // One line of a Claude Code transcript, repeated to the size asked for.
    let line = "{\"type\":\"assistant\",\"message\":{\"content\":\"ok\"}}\n";
    let transcript: Arc<str> =
        line.repeat(opts.transcript_bytes / line.len() + 1)[..opts.transcript_bytes].into();
    let started = Instant::now();
    let until = started + opts.duration;
    let mut tasks = Vec::with_capacity(opts.clients);
    for c in 0..opts.clients {
        let token = fixture.tokens[c % fixture.tokens.len()].clone();
        let (url, transcript) = (url.clone(), transcript.clone());
        let http = http_client()?;
        tasks.push(tokio::spawn(async move {
            let (mut stored, mut refused, mut hist) = (0u64, 0u64, histogram()?);
            while Instant::now() < until {
                let body = json!({
                    "session_id": uuid::Uuid::new_v4(),
                    "source": "claude-code",
                    "started_at": "2026-12-01T09:00:00Z",
                    "ended_at": "2026-12-01T09:30:00Z",
                    "usage": [
                        {"model": "claude-sonnet-4-5", "input_tokens": 12000, "output_tokens": 3400,
                         "cache_read_tokens": 50000, "cache_write_tokens": 8000},
                        {"model": "claude-haiku-4-5", "input_tokens": 900, "output_tokens": 120}
                    ],
                    "transcript": &*transcript,
                });
                let sent = Instant::now();
                let resp = http.post(&url).bearer_auth(&token).json(&body).send().await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(201) => {
                        stored += 1;
                        record_us(&mut hist, sent.elapsed().as_micros() as u64);
                    }
                    _ => refused += 1,
                }
            }
            anyhow::Ok((stored, refused, hist))
        }));
    }
    let (mut stored, mut refused, mut hist) = (0, 0, histogram()?);
    for t in tasks {
        let (s, r, h) = t.await??;
        stored += s;
        refused += r;
        hist.add(&h)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(SessionsReport {
        clients: opts.clients,
        transcript_bytes: opts.transcript_bytes,
        seconds,
        stored,
        refused,
        stored_per_s: stored as f64 / seconds,
        latency: Latency::from_histogram(&hist),
    })
}
