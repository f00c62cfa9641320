-- put.io sources: the kind 'putio' is allowed. Its external_id is the SHA-256 of the
-- token in its callback URL (the token itself is the sealed secret).
ALTER TABLE sources DROP CONSTRAINT sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check
    CHECK (kind IN ('slack', 'clickup', 'ingest', 'putio'));
