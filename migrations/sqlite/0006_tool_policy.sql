-- What a tenant's agents may do with tools: reach only mapped channels and lists
-- ('mapped') or any target the tenant's tokens reach ('any'); ping whole channels
-- (<!channel>, <!here>, @everyone, user groups) or have those neutralised.
ALTER TABLE tenants ADD COLUMN tool_scope TEXT NOT NULL DEFAULT 'mapped'
    CHECK (tool_scope IN ('mapped', 'any'));
ALTER TABLE tenants ADD COLUMN allow_broadcasts BOOLEAN NOT NULL DEFAULT 0;
