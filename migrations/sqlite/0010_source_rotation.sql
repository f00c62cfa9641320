-- A rotated signing secret: the one it replaced stays accepted until previous_until
-- (Unix ms), so senders can switch without a gap. Sealed like the secret.
ALTER TABLE sources ADD COLUMN previous_secret TEXT;
ALTER TABLE sources ADD COLUMN previous_until INTEGER;
