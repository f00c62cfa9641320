-- `nexus agent revoke-tokens`: tokens issued before this instant (Unix ms) are refused.
ALTER TABLE agents ADD COLUMN tokens_valid_after INTEGER NOT NULL DEFAULT 0;
