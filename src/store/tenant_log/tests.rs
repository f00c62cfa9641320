//! The merge against a model: a stream built step by step (own appends and log
//! appends in any order, from any subscription point, some oldest own events dropped
//! by retention), each event given its seq as it is appended. Reading any page after
//! any point must give exactly the model's events after it, with their seqs.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Own,
    Log,
}

/// The model: every event of the agent's stream in order, with its seq, and the
/// inputs `read_inbox` would get from the database.
struct Model {
    agent: AgentId,
    /// (seq, Some(n) for a log entry)
    stream: Vec<(u64, Option<u64>)>,
    own: Vec<(u64, u64, u64)>,
    log: Vec<u64>,
    cursor: Anchor,
}

fn build(base: u64, steps: &[Step]) -> Model {
    let agent = AgentId::new_v7();
    let (mut head, mut seq, mut mark) = (base, 0u64, base);
    let mut m = Model {
        agent,
        stream: Vec::new(),
        own: Vec::new(),
        log: (1..=base).collect(),
        cursor: Anchor {
            agent,
            last: 0,
            mark: base,
        },
    };
    for step in steps {
        match step {
            Step::Log => {
                head += 1;
                seq += 1;
                m.log.push(head);
                m.stream.push((seq, Some(head)));
            }
            Step::Own => {
                seq += 1;
                let prev = std::mem::replace(&mut mark, head);
                m.own.push((seq, mark, prev));
                m.stream.push((seq, None));
                m.cursor = Anchor {
                    agent,
                    last: seq,
                    mark,
                };
            }
        }
    }
    m
}

fn own_row(agent: AgentId, (seq, mark, prev_mark): (u64, u64, u64)) -> Own {
    Own {
        event: InboxEvent {
            agent,
            seq: Seq::new(seq),
            event_id: EventId::new_v7(),
            kind: EventType::WakeUp,
            data: Arc::from("{}"),
            trace_id: None,
            created_at: 0,
        },
        mark,
        prev_mark,
    }
}

fn entry(n: u64) -> LogEvent {
    LogEvent {
        n,
        event_id: EventId::new_v7(),
        kind: EventType::WakeUp,
        data: Arc::from("{}"),
        trace_id: None,
        created_at: 0,
    }
}

/// What `read_inbox` does, on the model's rows, with the oldest `dropped` own events
/// gone to retention.
fn read(m: &Model, dropped: usize, after: u64, limit: u32) -> Vec<u64> {
    let own: Vec<Own> = m
        .own
        .iter()
        .skip(dropped)
        .filter(|(seq, _, _)| *seq > after)
        .take(limit as usize)
        .map(|o| own_row(m.agent, *o))
        .collect();
    let from = log_start(&own, m.cursor, after);
    let log: Vec<LogEvent> = m
        .log
        .iter()
        .filter(|n| **n >= from)
        .take(limit as usize)
        .map(|n| entry(*n))
        .collect();
    merge(m.agent, own, log, m.cursor, limit)
        .iter()
        .map(|e| e.seq.get())
        .collect()
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(prop_oneof![Just(Step::Own), Just(Step::Log)], 0..40)
}

proptest! {
    #[test]
    fn a_page_is_the_stream_after_the_point(
        base in 0u64..5,
        steps in steps(),
        after_frac in 0.0f64..1.2,
        limit in 1u32..8,
    ) {
        let m = build(base, &steps);
        let newest = m.stream.last().map_or(0, |(s, _)| *s);
        let after = ((newest as f64) * after_frac) as u64;
        let want: Vec<u64> = m
            .stream
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s > after)
            .take(limit as usize)
            .collect();
        prop_assert_eq!(read(&m, 0, after, limit), want);
    }

    #[test]
    fn retention_leaves_a_gap_never_a_wrong_seq(
        steps in steps(),
        dropped in 0usize..6,
        after_frac in 0.0f64..1.0,
        limit in 1u32..8,
    ) {
        let m = build(0, &steps);
        let dropped = dropped.min(m.own.len());
        // Everything up to the last dropped own event went with it.
        let cut = if dropped == 0 { 0 } else { m.own[dropped - 1].0 };
        let newest = m.stream.last().map_or(0, |(s, _)| *s);
        let after = ((newest as f64) * after_frac) as u64;
        let got = read(&m, dropped, after, limit);
        let kept: Vec<u64> = m.stream.iter().map(|(s, _)| *s).filter(|s| *s > after.max(cut)).collect();
        // A page is a run of the kept stream, from its start (what retention took
        // before it is a gap the session reports).
        prop_assert!(got.iter().all(|s| *s > after));
        prop_assert_eq!(&got[..], &kept[..got.len()]);
        prop_assert!(!got.is_empty() || kept.is_empty());
    }
}

/// A read races appends: the head and cursor come from one statement, the own events
/// from a later one that may see own events appended since, after log entries the
/// read does not fetch. The page must stop before them, never skip those entries.
#[test]
fn own_events_newer_than_the_head_read_end_the_page() {
    let steps = [
        Step::Own,
        Step::Log,
        Step::Own,
        Step::Log,
        Step::Own,
        Step::Log,
    ];
    for snapshot in 0..=steps.len() {
        let then = build(0, &steps[..snapshot]);
        let now = build(0, &steps);
        let head = then.log.last().copied().unwrap_or(0);
        for after in 0..=then.cursor.last {
            let mut own: Vec<Own> = now
                .own
                .iter()
                .filter(|(seq, _, _)| *seq > after)
                .map(|o| own_row(now.agent, *o))
                .collect();
            up_to_head(&mut own, head);
            let from = log_start(&own, then.cursor, after);
            let log: Vec<LogEvent> = now
                .log
                .iter()
                .filter(|n| **n >= from && **n <= head)
                .map(|n| entry(*n))
                .collect();
            let got: Vec<u64> = merge(now.agent, own, log, then.cursor, 100)
                .iter()
                .map(|e| e.seq.get())
                .collect();
            let want: Vec<u64> = (after + 1..=after + got.len() as u64).collect();
            assert_eq!(got, want, "snapshot after {snapshot} steps, after {after}");
        }
    }
}

#[test]
fn log_entries_before_an_agent_was_created_are_not_its() {
    let m = build(3, &[Step::Log, Step::Own, Step::Log]);
    assert_eq!(read(&m, 0, 0, 10), vec![1, 2, 3]);
    assert_eq!(read(&m, 0, 1, 10), vec![2, 3]);
}
