//! `nexus putio register`: start a put.io transfer whose completion callback goes to a
//! put.io source, through put.io's API (`POST /v2/transfers/add`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{print_line, stdin_secrets};
use crate::store::{Secret, SourceKind, Store};

#[derive(Debug, Subcommand)]
pub enum PutioCmd {
    /// Add a transfer to put.io with its callback URL set to the source's; prints the
    /// transfer's id and status.
    Register(Box<Register>),
}

#[derive(Debug, Args)]
pub struct Register {
    /// The put.io source (`nexus source add --kind putio`).
    #[arg(long)]
    source: Uuid,
    /// What put.io fetches: a magnet link or a URL.
    #[arg(long)]
    url: String,
    /// The put.io folder to save into (put.io's default: the root, 0).
    #[arg(long)]
    save_parent_id: Option<u64>,
    /// The node's public base URL as put.io reaches it (e.g. https://nexus.example.com);
    /// the callback is this and the source's `/webhooks/putio/{token}`.
    #[arg(long, env = "NEXUS_PUBLIC_URL")]
    callback_base: Url,
    /// put.io's API.
    #[arg(
        long,
        env = "NEXUS_PUTIO_API_URL",
        default_value = "https://api.put.io"
    )]
    api_url: Url,
    /// The put.io OAuth token the transfer is added with (`-`: read from stdin).
    #[arg(long, env = "PUTIO_TOKEN", hide_env_values = true)]
    putio_token: Secret,
}

/// put.io's answer: `{"status":"OK","transfer":{…}}`, or `status` `ERROR` with a message.
#[derive(Deserialize)]
struct Answer {
    transfer: Option<Transfer>,
    error_message: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Transfer {
    id: u64,
    status: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    source_id: Uuid,
    transfer: Transfer,
}

/// Long enough for put.io to fetch a torrent's metadata before answering.
const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn putio(store: &Store, cmd: PutioCmd) -> anyhow::Result<()> {
    let PutioCmd::Register(r) = cmd;
    let [token] = stdin_secrets([Some(r.putio_token.clone())])?;
    let token = token.context("no put.io token")?;
    let source = store.get_source(r.source).await?;
    if source.kind != SourceKind::Putio {
        bail!(
            "source {} is a {} source, not a put.io one",
            source.id,
            source.kind.as_str()
        );
    }
    let callback = format!(
        "{}/webhooks/putio/{}",
        r.callback_base.as_str().trim_end_matches('/'),
        source.secret.expose()
    );
    let transfer = add_transfer(&r, &token, &callback).await?;
    print_line(&Registered {
        source_id: source.id,
        transfer,
    })
}

/// `POST {api}/v2/transfers/add`; put.io's refusal becomes the error, with its message.
async fn add_transfer(r: &Register, token: &Secret, callback: &str) -> anyhow::Result<Transfer> {
    let endpoint = r
        .api_url
        .join("v2/transfers/add")
        .context("--api-url is not a base URL")?;
    let save_parent_id = r.save_parent_id.map(|id| id.to_string());
    let mut form = vec![("url", r.url.as_str()), ("callback_url", callback)];
    if let Some(id) = &save_parent_id {
        form.push(("save_parent_id", id));
    }
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let response = client
        .post(endpoint)
        .bearer_auth(token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(serde_urlencoded::to_string(&form)?)
        .send()
        .await
        .context("cannot reach put.io")?;
    let status = response.status();
    let answer: Answer = response
        .json()
        .await
        .with_context(|| format!("put.io answered {status} without its JSON"))?;
    match (status.is_success(), answer.transfer) {
        (true, Some(transfer)) => Ok(transfer),
        (_, _) => bail!(
            "put.io refused the transfer ({status}): {}",
            answer.error_message.as_deref().unwrap_or("no message")
        ),
    }
}
