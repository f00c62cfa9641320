//! Where a session stands in its agent's inbox and what it sends next, without I/O:
//! the session reads pages and writes frames, this decides. Kept pure so that every
//! interleaving of pushes, pages, acks, resumes and retention can be tried against
//! it (`tests.rs`, a property test over a model inbox).
//!
//! The rule: an event goes out only if its `seq` is `last_sent + 1`. A pushed event
//! that is older was already sent; a newer one means something between is still
//! unread, so the session reads the inbox instead. A page that starts past
//! `last_sent + 1` lost the events between to retention: that is a `gap`.

use nexus_proto::{Gap, Seq};

use crate::bus::Push;
use crate::store::{Cursor, InboxEvent};

/// What to do with a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pushed {
    /// Already sent (a page carried it): drop it.
    Stale,
    /// The very next event: send it.
    Next,
    /// Something after `last_sent` is unread: read the inbox.
    Read,
}

/// What an agent's cumulative ack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ack {
    /// At or below the last ack: nothing to record.
    Stale,
    /// Moves the cursor: record it.
    Advance,
    /// Past what this session sent (or was told to skip): refused.
    Beyond,
}

/// What to do with a page read from the inbox after [`Delivery::last_sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageStep {
    /// Sent before the page's events: these were removed by retention.
    pub gap: Option<Gap>,
    /// The page was full: read another after sending it.
    pub more: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Delivery {
    last_sent: Seq,
    acked: Seq,
    /// Last seq known to exist when the replay began: if a page finds nothing after
    /// `last_sent`, retention took everything up to here.
    last_seq_hint: Seq,
}

impl Delivery {
    /// A new session, replaying after `requested` (else the agent's last ack).
    pub(super) fn connect(requested: Option<Seq>, cursor: Cursor) -> Delivery {
        let mut delivery = Delivery {
            last_sent: Seq::ZERO,
            acked: cursor.acked_seq,
            last_seq_hint: Seq::ZERO,
        };
        delivery.resume(requested.unwrap_or(cursor.acked_seq), cursor);
        delivery
    }

    /// Replays again after `after_seq`, which is clamped to what exists: a replay
    /// point past the last committed seq would let the agent ack, and so silence,
    /// events not yet written. The session reads pages next.
    pub(super) fn resume(&mut self, after_seq: Seq, cursor: Cursor) {
        self.last_seq_hint = cursor.last_seq;
        self.last_sent = after_seq.min(cursor.last_seq);
    }

    pub(super) fn last_sent(&self) -> Seq {
        self.last_sent
    }

    /// Only the test reads it back: the session records acks as they advance.
    #[cfg(test)]
    fn acked(&self) -> Seq {
        self.acked
    }

    pub(super) fn on_push(&self, push: &Push) -> Pushed {
        match push {
            Push::Event(ev) if ev.seq <= self.last_sent => Pushed::Stale,
            Push::Event(ev) if ev.seq == self.last_sent.next() => Pushed::Next,
            Push::Event(_) | Push::CatchUp => Pushed::Read,
        }
    }

    /// `page` was read after `last_sent` with `limit`; the session then sends the
    /// gap, if any, and the page's events (each through [`Delivery::sent`]).
    pub(super) fn on_page(&mut self, page: &[InboxEvent], limit: u32) -> PageStep {
        let more = u32::try_from(page.len()).is_ok_and(|n| n >= limit);
        let expected = self.last_sent.next();
        let gap = match page.first() {
            Some(first) if first.seq > expected => Some(self.gap_until(first.seq)),
            // Nothing left of what existed at the connect or resume: retention took
            // it before the replay reached it, on whichever page that happened.
            None if self.last_seq_hint > self.last_sent => {
                let gap = self.gap_until(self.last_seq_hint.next());
                self.last_sent = self.last_seq_hint;
                Some(gap)
            }
            _ => None,
        };
        PageStep { gap, more }
    }

    fn gap_until(&self, first_available_seq: Seq) -> Gap {
        Gap {
            after_seq: self.last_sent,
            first_available_seq,
        }
    }

    /// The event with `seq` went out.
    pub(super) fn sent(&mut self, seq: Seq) {
        self.last_sent = seq;
    }

    /// What an ack of `seq` would do, without doing it.
    pub(super) fn check_ack(&self, seq: Seq) -> Ack {
        if seq > self.last_sent {
            Ack::Beyond
        } else if seq > self.acked {
            Ack::Advance
        } else {
            Ack::Stale
        }
    }

    /// An ack of `seq`: the session records it if it advanced.
    pub(super) fn ack(&mut self, seq: Seq) -> Ack {
        let outcome = self.check_ack(seq);
        if outcome == Ack::Advance {
            self.acked = seq;
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
