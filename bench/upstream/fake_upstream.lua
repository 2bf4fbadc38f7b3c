-- Fake OpenAI (Chat Completions and Responses) / Anthropic / Gemini / Bedrock upstream for the anygate benchmark,
-- run inside nginx's Lua module.
--
-- Why Lua inside nginx: whether to answer with JSON or SSE depends on `"stream": true` in the
-- request body, which plain nginx config cannot look at; the Lua module reads the body in C and
-- the answer bodies are preloaded at start-up, so a request costs nginx a few tens of
-- microseconds. Streams are written one SSE event per write so gateways see real chunking.

local M = {}

local bodies = {}
local slow_interval = 0.1

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Split an SSE file into whole events (each ending with the blank line).
local function split_events(s)
  local out = {}
  local start = 1
  for _ = 1, 100000 do
    local _, j = string.find(s, "\n\n", start, true)
    if not j then break end
    out[#out + 1] = string.sub(s, start, j)
    start = j + 1
  end
  return out
end

-- Split an AWS event-stream file into whole messages: each starts with its total length (4 bytes,
-- big-endian) in its prelude.
local function split_eventstream(s)
  local out = {}
  local start = 1
  while start + 3 <= #s do
    local b1, b2, b3, b4 = string.byte(s, start, start + 3)
    local total = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    out[#out + 1] = string.sub(s, start, start + total - 1)
    start = start + total
  end
  return out
end

function M.load(dir, interval)
  slow_interval = interval
  for _, api in ipairs({ "openai", "anthropic", "gemini", "responses" }) do
    bodies[api .. "_json"] = read_file(dir .. "/" .. api .. ".json")
    bodies[api .. "_sse"] = split_events(read_file(dir .. "/" .. api .. ".sse"))
  end
  -- Responses has no slow variant (scenario e runs Chat Completions and Anthropic).
  for _, api in ipairs({ "openai", "anthropic", "gemini" }) do
    bodies[api .. "_slow_sse"] = split_events(read_file(dir .. "/" .. api .. "_slow.sse"))
  end
  for _, api in ipairs({ "bedrock_converse", "bedrock_invoke" }) do
    bodies[api] = split_eventstream(read_file(dir .. "/" .. api .. ".eventstream"))
  end
end

local function request_wants_stream()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local path = ngx.req.get_body_file()
    if not path then return false end
    body = read_file(path)
  end
  return string.find(body, '"stream":true', 1, true) ~= nil
      or string.find(body, '"stream": true', 1, true) ~= nil
end

local function is_content_event(ev)
  return string.find(ev, '"delta":{"content":', 1, true) ~= nil
      or string.find(ev, '"text_delta"', 1, true) ~= nil
      or string.find(ev, '"parts":[{"text":" word', 1, true) ~= nil
end

local function send_stream(events, slow)
  ngx.header["Content-Type"] = "text/event-stream; charset=utf-8"
  ngx.header["Cache-Control"] = "no-cache"
  for i = 1, #events do
    local ev = events[i]
    if slow and is_content_event(ev) then ngx.sleep(slow_interval) end
    ngx.print(ev)
    ngx.flush(false)
  end
end

-- api: "openai", "responses", "anthropic" or "gemini"; slow: true for the 10-second streams of
-- scenario (e); stream: true/false when the path says it (Gemini's streamGenerateContent), nil to read
-- the body.
function M.serve(api, slow, stream)
  if ngx.req.get_method() ~= "POST" then
    ngx.status = 405
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"error":{"message":"POST only"}}')
    return
  end
  ngx.header["x-request-id"] = "req_bench_fake_upstream"
  if api == "anthropic" then ngx.header["request-id"] = "req_bench_fake_upstream" end
  if stream == nil then stream = request_wants_stream() else ngx.req.read_body() end
  if stream then
    if slow then
      send_stream(bodies[api .. "_slow_sse"], true)
    else
      send_stream(bodies[api .. "_sse"], false)
    end
  else
    local body = bodies[api .. "_json"]
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  end
end

-- Bedrock's streaming operations (ConverseStream, InvokeModelWithResponseStream): the path says it
-- streams; the answer is binary event-stream messages, one per write. The SigV4 signature is not
-- checked.
function M.serve_eventstream(api)
  if ngx.req.get_method() ~= "POST" then
    ngx.status = 405
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"message":"POST only"}')
    return
  end
  ngx.req.read_body()
  ngx.header["x-amzn-RequestId"] = "0bench00-0000-4000-8000-fakeupstream"
  ngx.header["Content-Type"] = "application/vnd.amazon.eventstream"
  local messages = bodies[api]
  for i = 1, #messages do
    ngx.print(messages[i])
    ngx.flush(false)
  end
end

return M
