-- Closed-loop POSTs, every request a new operation id.
--
-- The harness prepends the globals this script reads:
--   path      the URL path to POST to
--   token     the bearer token
--   tag       unique per run, so ids never repeat across runs
--   products  how many products to spread over (1: always product_prefix itself)
--   product_prefix, rest   the body is {"id": ..., "productId": ..., <rest>
--   events    0 for one operation per request; N for a JSON array of N events per request
-- Each thread counts status codes; done() prints one line "BENCH {json}" for the harness.

local counter = 0
statuses = {}
threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("thread_id", created)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(thread_id * 7919 + os.time())
end

local function product()
  if products > 1 then
    return product_prefix .. math.random(1, products)
  end
  return product_prefix
end

local function operation(suffix)
  return '{"id":"' .. tag .. '-' .. thread_id .. '-' .. suffix .. '","productId":"'
    .. product() .. '",' .. rest
end

local headers = nil

function request()
  if headers == nil then
    headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  end
  counter = counter + 1
  local body
  if events > 0 then
    local items = {}
    for i = 1, events do
      items[i] = operation(counter .. '-' .. i)
    end
    body = '[' .. table.concat(items, ',') .. ']'
  else
    body = operation(counter)
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for code, n in pairs(seen) do
      counts[tostring(code)] = (counts[tostring(code)] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, '"' .. code .. '":' .. n)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout, table.concat(parts, ",")))
end
