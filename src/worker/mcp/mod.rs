//! `nexus mcp`: a stdio MCP server that is one Nexus agent, so an MCP-speaking
//! assistant (a coding agent, a desktop assistant) joins Nexus without code. It holds
//! the agent's socket ([`session`]) and offers MCP tools ([`tools`]) and one resource
//! per open task (`nexus://tasks/{id}`: its assignment and the updates since), with a
//! `notifications/resources/updated` when an event changes one. Configured by
//! `NEXUS_URL`, `NEXUS_CLIENT_ID` and `NEXUS_CLIENT_SECRET`; speaks the agent protocol v1.

mod session;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::session::Session;
use super::client::{Credentials, Node};
use crate::store::Secret;

const TASKS: &str = "nexus://tasks/";

fn task_uri(id: &str) -> String {
    format!("{TASKS}{id}")
}

#[derive(Clone)]
struct Bridge {
    session: Arc<Session>,
    node: Arc<Node>,
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .build();
        let mut info = Implementation::new("nexus", env!("CARGO_PKG_VERSION"));
        info.title = Some("Nexus agent (protocol v1)".into());
        ServerConfig::new(capabilities)
            .with_server_info(info)
            .with_instructions(
                "You are a Nexus agent. Call nexus_next_events to receive your tasks and messages \
                 (it waits for them), act with the slack_*, task_* and clickup_* tools, and report \
                 progress with nexus_set_status. Open tasks are resources (nexus://tasks/{id}).",
            )
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        Ok(tools::call(&self.session, &self.node, &request.name, args)
            .await
            .into())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let tasks = self.session.tasks();
        let resources = tasks
            .iter()
            .map(|(id, task)| {
                let name = task["assigned"]["task"]["name"].as_str().unwrap_or(id);
                Resource::new(task_uri(id), format!("Task {name}"))
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let id = request.uri.strip_prefix(TASKS).unwrap_or_default();
        let Some((_, task)) = self.session.tasks().into_iter().find(|(t, _)| t == id) else {
            return Err(ErrorData::resource_not_found(
                format!("no open task at {}", request.uri),
                None,
            ));
        };
        let contents = ResourceContents::text(task.to_string(), request.uri);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// Runs the bridge on stdin/stdout until the MCP client goes away.
pub async fn run() -> anyhow::Result<()> {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("set {name}"))
    };
    let url = env("NEXUS_URL")?;
    let credentials = Credentials {
        client_id: env("NEXUS_CLIENT_ID")?,
        client_secret: Secret::new(env("NEXUS_CLIENT_SECRET")?),
    };
    let node = Arc::new(Node::new(&url, credentials, Duration::from_secs(30))?);
    // Fails early, with the node's reason, on a wrong URL or credentials.
    node.token().await.context("cannot get the agent's token")?;
    let stop = CancellationToken::new();
    let (changed_tx, mut changed) = mpsc::channel(64);
    let session = Session::start(node.clone(), &url, changed_tx, stop.clone());
    let bridge = Bridge { session, node };
    let running = bridge.serve(rmcp::transport::stdio()).await?;
    let peer = running.peer().clone();
    tokio::spawn(async move {
        while let Some(uri) = changed.recv().await {
            let note = ResourceUpdatedNotificationParam::new(uri);
            if let Err(e) = peer.notify_resource_updated(note).await {
                tracing::debug!(error = %e, "resource update not announced");
            }
        }
    });
    let ended = running.waiting().await;
    stop.cancel();
    ended?;
    Ok(())
}
