-- wrk script for bench/run.py: one of four request kinds, and a JSON summary line at the end.
-- Usage: wrk ... -s load.lua URL -- MODE PREFIX N_ITEMS [HOLD_MS CONNECTIONS_PER_THREAD]
--   health: GET /health/live          list: GET /items?limit=10
--   get:    GET /items/{id}, rotating over ids 1..N_ITEMS (a stride that is coprime with
--           N_ITEMS in practice, so consecutive requests hit different rows)
--   create: POST /items with a name unique per run, thread and request (no 409s)

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("id", next_thread)
end

function init(args)
  mode = args[1] or "health"
  prefix = args[2] or "bench"
  n_items = tonumber(args[3] or "10000")
  counter = (id or 0) * 100003
  -- Hold each connection's first request HOLD_MS, so every connection is open before the
  -- load starts (see bench/run.py --connect-under-load). Defining delay() at all makes wrk
  -- call it before every request, so it is only defined when holding.
  local hold_ms = tonumber(args[4] or "0")
  local held = tonumber(args[5] or "0")
  if hold_ms > 0 then
    delay = function()
      if held > 0 then
        held = held - 1
        return hold_ms
      end
      return 0
    end
  end
  if mode == "create" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  counter = counter + 1
  if mode == "get" then
    return wrk.format("GET", "/items/" .. ((counter * 7919) % n_items + 1))
  elseif mode == "create" then
    local body = string.format(
      '{"name":"%s-%d-%d","description":"created by wrk","quantity":%d}',
      prefix, id or 0, counter, counter % 100
    )
    return wrk.format("POST", "/items", nil, body)
  elseif mode == "list" then
    return wrk.format("GET", "/items?limit=10")
  end
  return wrk.format("GET", "/health/live")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout
  ))
end
