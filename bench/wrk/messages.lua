-- wrk script of the anygate benchmark: POST one fixed body, check every answer, print JSON figures.
--
-- Configured through the environment (set by bench/loadgen.py):
--   BENCH_BODY_FILE  path of the request body
--   BENCH_HEADERS    extra request headers, one "Name: value" per line
--   BENCH_EXPECT     text every 2xx answer must contain (e.g. "message_stop" for a stream),
--                    so a stream cut short counts as an error, not as a fast success
--   BENCH_PATH       request path (default /v1/messages)
--   BENCH_KEY_FILE   optional: API keys, one a line; each request sends the next one as x-api-key,
--                    round-robin from the first (the teams variants: keys spread over the key cache)
-- Why check bodies in Lua: wrk alone counts a truncated 200 stream as a success.

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/messages"
wrk.body = read_file(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set"))
wrk.headers["Content-Type"] = "application/json"
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end
local expect = os.getenv("BENCH_EXPECT") or ""

local key_file = os.getenv("BENCH_KEY_FILE") or ""
if key_file ~= "" then
  local keys = {}
  for line in io.lines(key_file) do
    if line ~= "" then keys[#keys + 1] = line end
  end
  assert(#keys > 0, "BENCH_KEY_FILE has no keys")
  local count, next_key = #keys, 0
  -- Defined only with a key file: without it wrk sends its pre-built request, as before.
  function request()
    next_key = next_key % count + 1
    wrk.headers["x-api-key"] = keys[next_key]
    return wrk.format()
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

bad = 0
first_bad = ""
function response(status, headers, body)
  if status >= 200 and status < 300 then
    if expect ~= "" and not string.find(body, expect, 1, true) then
      bad = bad + 1
      if first_bad == "" then first_bad = string.sub(body, -300) end
    end
  elseif first_bad == "" then
    first_bad = "HTTP " .. status .. ": " .. string.sub(body, 1, 300)
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local bad_total = 0
  local sample = ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + (t:get("bad") or 0)
    local fb = t:get("first_bad") or ""
    if sample == "" and fb ~= "" then sample = fb end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"bad_body":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"sample_failure":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, bad_total,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    json_string(sample)))
end
