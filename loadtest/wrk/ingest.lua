-- wrk script: POST distinct webhooks to a Nexus ingest source.
-- usage: INGEST_TOKEN=… wrk -t2 -c32 -d20s -s loadtest/wrk/ingest.lua --latency http://127.0.0.1:8080/webhooks/ingest/<source id>
local counter = 0
local token = os.getenv("INGEST_TOKEN") or ""
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local key = tid .. "-" .. counter
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = key,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", nil, headers, '{"transfer":{"id":"' .. key .. '","status":"COMPLETED"}}')
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
