-- wrk script of bench/bench_events.py: creates or reads events, checking every answer.
--
-- Settings come from the environment (the bench sets them):
--   BENCH_MODE   "create" (POST a report) or "get" (GET one by id)
--   BENCH_PATH   the collection, /v1/tenants/{tenant}/events
--   BENCH_KEY    the app's API key (X-API-Key)
--   BENCH_TAG    prefix of the Idempotency-Keys, fresh per run
--   BENCH_SLOTS  create: "lon,lat,category,cell" lines, one report place each
--   BENCH_FIRST  create: the place to start from (a warm-up starts elsewhere, so the
--                measured run does not report where it did, which would be duplicates)
--   BENCH_IDS    get: "id,cell" lines of stored events
--   BENCH_CHECK  "1": check each answer (status, Idempotent-Replayed, the grid cell);
--                "0" for the floor, which answers with what it was sent
--   BENCH_RATE   if set, requests per second over all connections, sent on a schedule
--                (run with one connection per thread); latency then counts from each
--                request's scheduled send time, so queueing behind a slow answer counts
--   BENCH_START_US, BENCH_END_US  with BENCH_RATE: when the schedule starts and ends
--                (CLOCK_MONOTONIC, us), the same for every thread however long wrk took
--                to start them; nothing is sent after the end, the run goes on a little
--                so the last answers can arrive
--
-- Each create carries a fresh Idempotency-Key and walks the places; the answer echoes
-- the description ("bench report <k>"), which names the place and so the grid cell the
-- map service must have found.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local timespec = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local mode = os.getenv("BENCH_MODE") or "create"
local path = os.getenv("BENCH_PATH")
local key = os.getenv("BENCH_KEY") or ""
local tag = os.getenv("BENCH_TAG") or "wrk"
local check = os.getenv("BENCH_CHECK") ~= "0"
local rate = tonumber(os.getenv("BENCH_RATE") or "")
local first = tonumber(os.getenv("BENCH_FIRST") or "0")

local function lines(file)
  local rows = {}
  for line in io.lines(file) do
    local fields = {}
    for field in line:gmatch("[^,]+") do
      fields[#fields + 1] = field
    end
    rows[#rows + 1] = fields
  end
  return rows
end

-- main VM: keep the threads, to add up their tallies at the end
local threads = {}
function setup(thread)
  thread:set("number", #threads)
  threads[#threads + 1] = thread
end

-- thread VMs; the tallies are globals so that `thread:get` reads them in `done`
local rows, cells
local number, count, k = 0, tonumber(os.getenv("BENCH_THREADS") or "1"), 0
created, duplicates, errors, first_error, from_schedule = 0, 0, 0, "", {}
local interval_us, next_us, end_us, sent_at, armed = nil, nil, nil, {}, false
local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = key }

function init(args)
  number = wrk.thread:get("number")
  if mode == "create" then
    rows = lines(os.getenv("BENCH_SLOTS"))
  else
    rows = lines(os.getenv("BENCH_IDS"))
    cells = {}
    for _, row in ipairs(rows) do
      cells[row[1]] = row[2]
    end
  end
  if rate then
    interval_us = 1000000 * count / rate
    -- the threads' schedules are spread evenly over one interval
    local start = tonumber(os.getenv("BENCH_START_US") or "") or now_us()
    next_us = start + interval_us * number / count
    end_us = tonumber(os.getenv("BENCH_END_US") or "")
  end
end

local function fail(text)
  errors = errors + 1
  if first_error == "" then
    first_error = text:sub(1, 300)
  end
end

-- wrk asks for the delay before each real request (it also calls `request` once to
-- inspect it, without a delay: that one is not on the schedule)
function delay()
  if not next_us then
    return 0
  end
  if end_us and next_us >= end_us then
    return 3600000 -- the schedule is over: send nothing more
  end
  armed = true
  local wait = (next_us - now_us()) / 1000
  return wait > 0 and math.floor(wait) or 0
end

function request()
  local n = k * count + number
  k = k + 1
  if armed then
    armed = false
    sent_at[#sent_at + 1] = next_us
    next_us = next_us + interval_us
  end
  local place = (n + first) % #rows
  local row = rows[place + 1]
  if mode == "create" then
    headers["Idempotency-Key"] = tag .. "-" .. n
    local body = string.format(
      '{"category":"%s","description":"bench report %d","location":{"longitude":%s,"latitude":%s}}',
      row[3], place, row[1], row[2])
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path .. "/" .. row[1], headers)
end

local function replay_header(hs)
  return hs["idempotent-replayed"] or hs["Idempotent-Replayed"]
end

function response(status, hs, body)
  if next_us then
    local scheduled = table.remove(sent_at, 1)
    if scheduled then
      from_schedule[#from_schedule + 1] = math.floor(now_us() - scheduled)
    end
  end
  if not check then
    if status >= 400 then
      return fail(status .. " " .. body)
    end
  elseif mode == "create" then
    if status ~= 201 then
      return fail(status .. " " .. body)
    end
    if replay_header(hs) ~= "false" then
      return fail("Idempotent-Replayed: " .. tostring(replay_header(hs)) .. " on a fresh key")
    end
    local place = tonumber(body:match('"description"%s*:%s*"bench report (%d+)"'))
    local cell = body:match('"grid_cell"%s*:%s*"([^"]*)"')
    if not place or not rows[place + 1] then
      return fail("no bench description in " .. body)
    end
    if cell ~= rows[place + 1][4] then
      return fail("located in " .. tostring(cell) .. ", expected " .. rows[place + 1][4])
    end
    if body:match('"state"%s*:%s*"duplicate"') then
      duplicates = duplicates + 1
    end
  else
    if status ~= 200 then
      return fail(status .. " " .. body)
    end
    local id = body:match('"id"%s*:%s*"([^"]+)"')
    local cell = body:match('"grid_cell"%s*:%s*"([^"]*)"')
    if not id or cells[id] == nil then
      return fail("an unknown event in " .. body)
    end
    if cells[id] ~= cell then
      return fail("event " .. id .. " in " .. tostring(cell) .. ", stored in " .. cells[id])
    end
  end
  created = created + 1
end

-- back in the main VM after the run: lines the bench parses
function done(summary, latency, requests)
  local ok, dup, bad, first, scheduled = 0, 0, 0, "", {}
  for _, t in ipairs(threads) do
    ok = ok + t:get("created")
    dup = dup + t:get("duplicates")
    bad = bad + t:get("errors")
    if first == "" then
      first = t:get("first_error")
    end
    for _, us in ipairs(t:get("from_schedule")) do
      scheduled[#scheduled + 1] = us
    end
  end
  io.write(string.format("BENCH ok=%d duplicates=%d errors=%d\n", ok, dup, bad))
  io.write("BENCH first_error=" .. first:gsub("\n", " ") .. "\n")
  io.write("BENCH schedule_us=" .. table.concat(scheduled, " ") .. "\n")
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
