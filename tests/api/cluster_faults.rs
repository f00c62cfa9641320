//! The cluster profile under faults: a node SIGKILLed, a node restarting under its old
//! id, Redis connections killed under traffic, Redis unreachable for a while.

use std::time::Duration;

use fred::prelude::*;
use nexus_proto::{AgentId, TenantId};
use serde_json::{Value, json};

use crate::agent_client::{Agent, connect_at};
use crate::cluster::{Cluster, Crossed, eventually, expect_in_order, listed, online, wake};
use crate::cluster_profile;
use crate::crash::spawn_serve;
use crate::helpers::TestApp;
use crate::proxy::Proxy;

cluster_profile!(
    a_killed_nodes_agents_go_offline_and_catch_up_elsewhere,
    a_node_restarting_under_its_id_leaves_no_ghosts,
    killed_redis_connections_lose_nothing,
    a_redis_outage_keeps_sockets_and_loses_nothing,
);

const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A `nexus serve` process in the cluster, with an agent connected to it.
async fn process_node(
    c: &Cluster,
    node_id: &str,
    tenant: TenantId,
    agent: AgentId,
) -> (tokio::process::Child, Agent) {
    let env = [
        ("REDIS_URL", c.redis_url.as_str()),
        ("NEXUS_NODE_ID", node_id),
        ("NEXUS_JWT_SECRET", JWT_SECRET),
    ];
    let (child, addr) = spawn_serve(&c.db.url, &env).await;
    let token = c.nodes[0].token_for(agent, tenant);
    let mut ws = connect_at(&addr, Some(&token), "", &[])
        .await
        .expect("connects");
    ws.welcome().await;
    (child, ws)
}

async fn a_killed_nodes_agents_go_offline_and_catch_up_elsewhere() {
    let c = Cluster::start(1).await;
    let b = &c.nodes[0];
    let t = b.tenant("acme").await;
    let x = b.agent(t.id, "x").await;
    let key = b.operator_key("read,write", None).await;
    let node_id = format!("doomed-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (mut node, mut ws) = process_node(&c, &node_id, t.id, x.agent.id).await;
    assert!(listed(&online(b, &key, t.id).await, x.agent.id));

    // Three events while connected (emitted through B), then the node dies.
    for i in 1..=3 {
        assert_eq!(wake(b, &key, x.agent.id, i).await, 202);
    }
    expect_in_order(&mut ws, 1, 3).await;
    node.start_kill().expect("SIGKILL");
    node.wait().await.expect("wait");
    let offline_after = eventually("offline after SIGKILL", Duration::from_secs(30), || async {
        !listed(&online(b, &key, t.id).await, x.agent.id)
    })
    .await;
    eprintln!("offline {offline_after:?} after SIGKILL (node TTL 15 s)");

    // What is emitted meanwhile arrives, in order, on another node.
    for i in 4..=8 {
        assert_eq!(wake(b, &key, x.agent.id, i).await, 202);
    }
    let mut again = b
        .connect(&b.token_for(x.agent.id, t.id), "after_seq=3")
        .await
        .expect("reconnects");
    again.welcome().await;
    let got = expect_in_order(&mut again, 4, 5).await;
    assert_eq!(
        got,
        (4..=8).map(|i| json!({"i": i})).collect::<Vec<Value>>()
    );
}

async fn a_node_restarting_under_its_id_leaves_no_ghosts() {
    let c = Cluster::start(1).await;
    let b = &c.nodes[0];
    let t = b.tenant("acme").await;
    let x = b.agent(t.id, "x").await;
    let key = b.operator_key("read", None).await;
    let node_id = format!(
        "phoenix-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (mut node, _ws) = process_node(&c, &node_id, t.id, x.agent.id).await;
    assert!(listed(&online(b, &key, t.id).await, x.agent.id));
    node.start_kill().expect("SIGKILL");
    node.wait().await.expect("wait");
    // Back within the liveness TTL, so its old key still looks alive: only the
    // restart's own cleanup can clear the dead socket.
    let (_again, _) = spawn_serve(
        &c.db.url,
        &[
            ("REDIS_URL", c.redis_url.as_str()),
            ("NEXUS_NODE_ID", node_id.as_str()),
        ],
    )
    .await;
    assert!(
        !listed(&online(b, &key, t.id).await, x.agent.id),
        "the restarted node inherited a ghost"
    );
}

async fn kill_redis_clients(redis: &Client, names: &[String]) -> usize {
    let client = |args: Vec<&str>| {
        let redis = redis.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let cmd = fred::types::CustomCommand::new_static("CLIENT", None, false);
            redis
                .custom::<fred::types::Value, _>(cmd, args)
                .await
                .expect("CLIENT")
        }
    };
    let list = client(vec!["LIST"]).await.as_string().expect("client list");
    let mut killed = 0;
    for line in list.lines() {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k).map(str::to_owned))
        };
        if let (Some(id), Some(name)) = (field("id="), field("name="))
            && names.contains(&name)
        {
            client(vec!["KILL", "ID", id.as_str()]).await;
            killed += 1;
        }
    }
    killed
}

fn redis_names(app: &TestApp) -> Vec<String> {
    app.state
        .redis
        .as_ref()
        .expect("cluster node")
        .client_names()
        .to_vec()
}

async fn killed_redis_connections_lose_nothing() {
    let c = Cluster::start(2).await;
    let mut p = Crossed::new(&c).await;
    let redis = c.redis().await;
    let mut names = redis_names(&c.nodes[0]);
    names.extend(redis_names(&c.nodes[1]));
    for i in 0..60 {
        if i == 30 {
            assert_eq!(kill_redis_clients(&redis, &names).await, 4);
        }
        p.emit_across(&c, i).await;
    }
    // Everything arrives on the same sockets: nobody had to reconnect.
    let want: Vec<Value> = (0..60).map(|i| json!({"i": i})).collect();
    assert_eq!(expect_in_order(&mut p.on_0, 1, 60).await, want);
    assert_eq!(expect_in_order(&mut p.on_1, 1, 60).await, want);
    for node in &c.nodes {
        let set = online(node, &p.key, p.tenant).await;
        assert!(listed(&set, p.x) && listed(&set, p.y));
    }
}

async fn a_redis_outage_keeps_sockets_and_loses_nothing() {
    let redis_url = crate::helpers::redis_url();
    let upstream = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("NEXUS_TEST_REDIS_URL as redis://HOST:PORT");
    let proxy = Proxy::start(upstream).await;
    let via_proxy = format!("redis://{}", proxy.addr);
    // Node 0 reaches Redis through the proxy; node 1 directly.
    let c = Cluster::start_with(2, |i, cfg| {
        if i == 0 {
            cfg.serve.redis_url = Some(via_proxy.clone());
        }
    })
    .await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let mut p = Crossed::new(&c).await;
    let (t, x, y, key) = (p.tenant, p.x, p.y, p.key.as_str());

    proxy.cut();
    eventually("/ready names redis", Duration::from_secs(15), || async {
        let resp = a.http.get(a.url("/ready")).send().await.expect("ready");
        resp.status() == 503
            && resp.json::<Value>().await.is_ok_and(|v| {
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("redis"))
            })
    })
    .await;
    // While node 0 is cut off: its own agent still gets what node 0 commits; the
    // others' events wait for Redis, none fails. Redis also loses x's entry.
    assert_eq!(wake(a, key, x, 1).await, 202);
    expect_in_order(&mut p.on_0, 1, 1).await;
    assert_eq!(wake(b, key, x, 2).await, 202);
    assert_eq!(wake(a, key, y, 1).await, 202);
    let redis = c.redis().await;
    let _: i64 = redis
        .zrem(format!("tenant:{t}:agents"), x.to_string())
        .await
        .expect("zrem");

    proxy.restore().await;
    assert_eq!(
        expect_in_order(&mut p.on_0, 2, 1).await,
        vec![json!({"i": 2})]
    );
    assert_eq!(
        expect_in_order(&mut p.on_1, 1, 1).await,
        vec![json!({"i": 1})]
    );
    eventually("presence rebuilt", Duration::from_secs(15), || async {
        listed(&online(b, key, t).await, x)
    })
    .await;
    let ready = a.http.get(a.url("/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    let metrics = a
        .http
        .get(a.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("nexus_redis_reconnects_total"));
    assert!(metrics.contains("nexus_redis_errors_total"));
}
