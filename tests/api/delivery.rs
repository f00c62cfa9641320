//! The delivery contract: in order, at least once, across reconnects and restarts;
//! never the same seq twice within one session.

use std::collections::BTreeMap;
use std::sync::Arc;

use nexus_proto::{ServerMsg, close};
use serde_json::json;

use crate::agent_client::{Agent, event};
use crate::both_profiles;
use crate::gateway::emit;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    replay_then_live_with_and_without_after_seq,
    random_drops_lose_nothing_and_never_repeat_within_a_session,
    live_switch_under_concurrent_emits,
    slow_consumer_is_closed_and_others_keep_receiving,
    graceful_shutdown_then_resume_after_restart,
    gap_reported_when_retention_dropped_events,
    expired_events_are_swept_and_reported_as_a_gap,
    acks_of_many_agents_saved_at_once_never_move_back,
);

async fn seqs(agent: &mut Agent, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(event(&agent.recv().await).1);
    }
    out
}

async fn replay_then_live_with_and_without_after_seq(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    for i in 1..=5 {
        emit(&app, a.agent.id, i).await;
    }
    // Offline events are replayed after welcome, then live ones follow.
    let mut agent = app.connect(&token, "").await.expect("connects");
    assert_eq!(agent.welcome().await.last_acked_seq.get(), 0);
    assert_eq!(seqs(&mut agent, 5).await, vec![1, 2, 3, 4, 5]);
    emit(&app, a.agent.id, 6).await;
    assert_eq!(seqs(&mut agent, 1).await, vec![6]);
    agent.send(json!({"type": "ack", "data": {"seq": 4}})).await;
    drop(agent);

    // Without after_seq the replay starts after the last ack (acks are saved
    // asynchronously: poll the stored cursor, which is what the next connect reads).
    let key = app.operator_key("read", None).await;
    while app.cursor(a.agent.id, &key).await.acked_seq < 4 {
        tokio::task::yield_now().await;
    }
    let mut agent = app.connect(&token, "").await.expect("connects");
    assert_eq!(agent.welcome().await.last_acked_seq.get(), 4);
    assert_eq!(seqs(&mut agent, 2).await, vec![5, 6]);
    drop(agent);

    // after_seq (query or header) overrides the ack.
    let mut agent = app.connect(&token, "after_seq=1").await.expect("connects");
    agent.welcome().await;
    assert_eq!(seqs(&mut agent, 5).await, vec![2, 3, 4, 5, 6]);
    drop(agent);
    let mut agent = app
        .connect_with(Some(&token), "", &[("nexus-after-seq", "5")])
        .await
        .expect("connects");
    agent.welcome().await;
    assert_eq!(seqs(&mut agent, 1).await, vec![6]);

    // A mid-session resume replays from its point; the original seqs and ids come again.
    agent
        .send(json!({"type": "resume", "data": {"after_seq": 3}}))
        .await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let (_, seq, _, data) = event(&agent.recv().await);
        replayed.push((seq, data["i"].as_u64().expect("i")));
    }
    assert_eq!(replayed, vec![(4, 4), (5, 5), (6, 6)]);
}

/// A deterministic xorshift, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn random_drops_lose_nothing_and_never_repeat_within_a_session(p: Profile) {
    let app = TestApp::spawn(p).await;
    let app = Arc::new(app);
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    const N: u64 = 300;

    let producer = {
        let app = app.clone();
        let agent = a.agent.id;
        tokio::spawn(async move {
            for i in 1..=N {
                emit(&app, agent, i).await;
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut last_acked = 0;
    let mut sessions = 0;
    while seen.len() < N as usize {
        sessions += 1;
        // Half the sessions name their replay point, half rely on the saved ack.
        let query = if rng.below(2) == 0 {
            format!("after_seq={last_acked}")
        } else {
            String::new()
        };
        let mut agent = app.connect(&token, &query).await.expect("connects");
        agent.welcome().await;
        let budget = 1 + rng.below(60);
        let mut in_session: Vec<u64> = Vec::new();
        for _ in 0..budget {
            if seen.len() == N as usize {
                break;
            }
            let msg = agent.recv().await;
            let (_, seq, id, data) = event(&msg);
            if let Some(prev) = in_session.last() {
                assert!(seq > *prev, "session {sessions}: seq {seq} after {prev}");
            }
            in_session.push(seq);
            let i = data["i"].as_u64().expect("i");
            assert_eq!(i, seq, "events arrive in emission order");
            if let Some((prev_id, _)) = seen.get(&seq) {
                assert_eq!(prev_id, &id, "a redelivery keeps its event id");
            }
            seen.insert(seq, (id, i));
            if rng.below(3) == 0 {
                agent
                    .send(json!({"type": "ack", "data": {"seq": seq}}))
                    .await;
                last_acked = last_acked.max(seq);
            }
        }
        // Drop abruptly: no close handshake.
        drop(agent);
    }
    producer.await.expect("producer");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>()
    );
    assert!(
        sessions > 3,
        "the test exercised reconnects ({sessions} sessions)"
    );
}

async fn live_switch_under_concurrent_emits(p: Profile) {
    let app = TestApp::spawn(p).await;
    let app = Arc::new(app);
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    const N: u64 = 600;
    // Some events exist before the connect, more arrive during the replay.
    for i in 1..=200 {
        emit(&app, a.agent.id, i).await;
    }
    let producer = {
        let app = app.clone();
        let agent = a.agent.id;
        tokio::spawn(async move {
            for i in 201..=N {
                emit(&app, agent, i).await;
            }
        })
    };
    let mut agent = app.online(&a, t.id).await;
    let got = seqs(&mut agent, N as usize).await;
    assert_eq!(
        got,
        (1..=N).collect::<Vec<_>>(),
        "no gap, no reordering, no duplicate"
    );
    producer.await.expect("producer");
}

async fn slow_consumer_is_closed_and_others_keep_receiving(p: Profile) {
    let app = TestApp::spawn_with(p, |c| c.serve.ws.outbound_queue = 16).await;
    let t = app.tenant("acme").await;
    let slow = app.agent(t.id, "slow").await;
    let fast = app.agent(t.id, "fast").await;
    let mut slow_ws = app.online(&slow, t.id).await;
    let mut fast_ws = app.online(&fast, t.id).await;

    // The slow agent reads nothing; big events fill its socket buffers, then its queue.
    let mut changes = app.state.hub.presence().subscribe();
    let pad = "x".repeat(32 * 1024);
    let mut closed = false;
    for _ in 0..2_000 {
        let ev =
            nexus::bus::NewEvent::from_json(nexus_proto::EventType::WakeUp, &json!({ "pad": pad }));
        app.state
            .hub
            .emit_to_agent(t.id, slow.agent.id, ev)
            .await
            .expect("emit");
        while let Ok(change) = changes.try_recv() {
            if matches!(change, nexus::presence::PresenceChange::Offline { agent_id, .. } if agent_id == slow.agent.id)
            {
                closed = true;
            }
        }
        if closed {
            break;
        }
    }
    while !closed {
        if let Ok(nexus::presence::PresenceChange::Offline { agent_id, .. }) = changes.recv().await
            && agent_id == slow.agent.id
        {
            closed = true;
        }
    }
    // Meanwhile the other agent is served normally.
    for i in 1..=50 {
        emit(&app, fast.agent.id, i).await;
    }
    assert_eq!(seqs(&mut fast_ws, 50).await, (1..=50).collect::<Vec<_>>());
    assert_eq!(slow_ws.closed().await, close::SLOW_CONSUMER);
    // Nothing was lost: the slow agent's events wait in its inbox.
    let key = app.operator_key("read", None).await;
    assert!(app.cursor(slow.agent.id, &key).await.last_seq > 16);
}

async fn graceful_shutdown_then_resume_after_restart(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    let mut agent = app.connect(&token, "").await.expect("connects");
    agent.welcome().await;
    for i in 1..=3 {
        emit(&app, a.agent.id, i).await;
    }
    assert_eq!(seqs(&mut agent, 3).await, vec![1, 2, 3]);
    agent.send(json!({"type": "ack", "data": {"seq": 2}})).await;
    emit(&app, a.agent.id, 4).await;
    assert_eq!(seqs(&mut agent, 1).await, vec![4]);

    let db = app.stop().await;
    assert_eq!(agent.closed().await, close::SERVICE_RESTART);

    // The same database, a new node: the ack made it to disk before shutdown finished.
    let app = TestApp::spawn_on(db, |_| {}).await;
    emit(&app, a.agent.id, 5).await;
    let mut agent = app
        .connect(&token, "")
        .await
        .expect("connects after restart");
    assert_eq!(agent.welcome().await.last_acked_seq.get(), 2);
    assert_eq!(seqs(&mut agent, 3).await, vec![3, 4, 5]);
}

async fn gap_reported_when_retention_dropped_events(p: Profile) {
    let app = TestApp::spawn_with(p, |c| c.serve.inbox.cap = 5).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    for i in 1..=12 {
        emit(&app, a.agent.id, i).await;
    }
    let mut agent = app.online(&a, t.id).await;
    match agent.recv().await {
        ServerMsg::Gap { data } => {
            assert_eq!(data.after_seq.get(), 0);
            assert_eq!(data.first_available_seq.get(), 8);
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(seqs(&mut agent, 5).await, vec![8, 9, 10, 11, 12]);
}

async fn expired_events_are_swept_and_reported_as_a_gap(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.serve.inbox.ttl = std::time::Duration::from_secs(60)
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    for i in 1..=3 {
        emit(&app, a.agent.id, i).await;
    }
    // The retention sweep, as it would run two minutes from now.
    let later = nexus::time::now_ms() + 120_000;
    assert_eq!(
        app.state
            .store
            .delete_expired_inbox(later, 1000)
            .await
            .expect("sweep"),
        3
    );
    emit(&app, a.agent.id, 4).await;
    let mut agent = app.online(&a, t.id).await;
    match agent.recv().await {
        ServerMsg::Gap { data } => assert_eq!(
            (data.after_seq.get(), data.first_available_seq.get()),
            (0, 4)
        ),
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(seqs(&mut agent, 1).await, vec![4]);
}

/// Acks are flushed for many agents in one statement: each agent gets its own seq, an
/// older ack never lowers a cursor, and agents not named keep theirs.
async fn acks_of_many_agents_saved_at_once_never_move_back(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let mut agents = Vec::new();
    for name in ["a", "b", "c"] {
        let id = app.agent(t.id, name).await.agent.id;
        for i in 1..=3 {
            emit(&app, id, i).await;
        }
        agents.push(id);
    }
    let store = &app.state.store;
    let acked = |n: u64| nexus_proto::Seq::new(n);
    store
        .save_acks(&[(agents[0], acked(3)), (agents[1], acked(1))])
        .await
        .expect("first flush");
    store
        .save_acks(&[(agents[0], acked(2)), (agents[1], acked(2))])
        .await
        .expect("second flush");
    let mut cursors = Vec::new();
    for a in &agents {
        let c = store.cursor(*a).await.expect("cursor");
        cursors.push((c.last_seq.get(), c.acked_seq.get()));
    }
    assert_eq!(cursors, vec![(3, 3), (3, 2), (3, 0)]);
}
