-- The durable per-agent inbox (DESIGN §8) and each agent's delivery cursor.

-- last_seq: the newest seq appended; acked_seq: the agent's cumulative ack.
CREATE TABLE agent_cursors (
    agent_id  BLOB PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    last_seq  INTEGER NOT NULL DEFAULT 0,
    acked_seq INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE inbox (
    agent_id        BLOB NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    event_id        BLOB NOT NULL,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    trace_id        TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;

CREATE INDEX inbox_expires ON inbox (expires_at);
CREATE UNIQUE INDEX inbox_idempotency ON inbox (agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
