-- wrk script for Parley's benchmarks (bench/run.py).
--   wrk ... -s bench/lua/parley.lua <url> -- <mode> <data file> [extra]
-- modes:
--   process      POST /api/v1/messages/process; each request goes to the next customer of this
--                thread's share, each customer writing to its own conversation (scenario 1)
--   process_one  the same request, every request on the first customer's conversation (2)
--   history      GET /api/v1/conversations/<extra>/history?limit=50 as the first customer (3)
--   get          a plain GET of the URL's path (ceilings, topology comparison)
-- data file: one customer a line, "token<TAB>customer_id<TAB>conversation_id".
-- done() prints one line "WRKJSON {...}" with requests, errors by kind, statuses, latency.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
  thread:set("thread_count", 0) -- filled in by init through the global below
  table.insert(threads, thread)
end

local mode, customers, position, statuses, body_template, history_path

local function read_customers(path)
  local list = {}
  for line in io.lines(path) do
    local token, customer_id, conversation_id = line:match("^(%S+)\t(%d+)\t(%d+)")
    if token then
      table.insert(list, {token = token, customer_id = customer_id,
                          conversation_id = conversation_id})
    end
  end
  return list
end

function init(args)
  mode = args[1] or "get"
  statuses = {}
  position = 0
  if mode == "get" then
    return
  end
  local all = read_customers(args[2])
  customers = {}
  local nthreads = tonumber(args[4] or "1")
  if mode == "process" then
    -- This thread's share, so two threads never write to one conversation.
    for i, c in ipairs(all) do
      if (i - 1) % nthreads == thread_index then
        table.insert(customers, c)
      end
    end
  else
    customers = {all[1]}
  end
  if mode == "history" then
    history_path = "/api/v1/conversations/" .. args[3] .. "/history?limit=50"
  end
  body_template = args[5] or "How do I reset my password?"
end

function request()
  if mode == "get" then
    return wrk.format("GET", nil, {["Host"] = "127.0.0.1"})
  end
  position = position % #customers + 1
  local c = customers[position]
  local headers = {["Authorization"] = "Bearer " .. c.token, ["Host"] = "127.0.0.1"}
  if mode == "history" then
    return wrk.format("GET", history_path, headers)
  end
  headers["Content-Type"] = "application/json"
  local body = string.format('{"message": "%s", "customer_id": %s, "conversation_id": %s}',
                             body_template, c.customer_id, c.conversation_id)
  return wrk.format("POST", "/api/v1/messages/process", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function encode_statuses(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, k .. "=" .. v)
  end
  return table.concat(parts, ",")
end

-- Runs in each thread at the end? wrk has no per-thread end hook: statuses are read through
-- thread:get in done(), so keep them in a global string updated on every response.
local inner_response = response
function response(status, headers, body)
  inner_response(status, headers, body)
  status_string = encode_statuses(statuses)
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("status_string") or ""
    for code, count in s:gmatch("(%d+)=(%d+)") do
      merged[code] = (merged[code] or 0) + tonumber(count)
    end
  end
  local status_parts = {}
  for code, count in pairs(merged) do
    table.insert(status_parts, string.format('"%s": %d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, ' ..
    '"p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(status_parts, ", "),
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
