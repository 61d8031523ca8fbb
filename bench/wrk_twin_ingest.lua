-- wrk script for bench_twin_rest.py: one reading per request, POSTed to the twin's
-- ingest through the gateway, each request to the next of BENCH_ENTITIES gauges with a
-- value under the demo's flooding threshold (rules are evaluated; none fires).
-- Each answer is checked (200 and one reading accepted); `done` prints BENCH lines.

local path = os.getenv("BENCH_PATH")
-- BENCH_KEY: one app key, or several separated by commas, one per wrk thread in turn
-- (an app's quota is at most 100,000 requests a minute, under what one gateway takes).
local keys = {}
for each in string.gmatch(os.getenv("BENCH_KEY") or "", "[^,]+") do table.insert(keys, each) end
local entities = tonumber(os.getenv("BENCH_ENTITIES") or "100")
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  count, ok_count, bad_count, first_error = 0, 0, 0, ""
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = keys[id % math.max(#keys, 1) + 1] or ""
end

function request()
  count = count + 1
  local gauge = (count * 7 + id * 13) % entities
  local body = string.format(
    '{"entities":["bench-gauge-%d"],"properties":["level_cm"],"values":[%d.5]}',
    gauge, 5 + count % 20)
  return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"accepted_count": ?1[,}]') then
    ok_count = ok_count + 1
  else
    bad_count = bad_count + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 300) end
  end
end

function done(summary, latency, requests)
  local ok, bad, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("ok_count")
    bad = bad + thread:get("bad_count")
    if first == "" then first = thread:get("first_error") or "" end
  end
  io.write(string.format(
    "BENCH requests=%d ok=%d bad=%d seconds=%.3f p50_us=%d p99_us=%d\n",
    summary.requests, ok, bad, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99)))
  io.write("BENCH first_error=" .. first .. "\n")
end
