-- One provider's token bucket, shared by every worker: refill, take and throttle in one atomic
-- step (Redis runs a script alone). The Python twin is providers/token_bucket.py:LocalBucket;
-- tests/integration/test_rate_limits.py runs the same cases against both.
--
-- KEYS[1]  the bucket (a hash: tokens, ts, rate, blocked, cut)
-- ARGV[1]  "take" or "throttle"
-- ARGV[2]  configured rate, tokens per second
-- ARGV[3]  burst: capacity in seconds of the current rate
-- ARGV[4]  take: tokens wanted (a lease); throttle: Retry-After in seconds (0: none given)
-- ARGV[5]  take: share of the configured rate regained per second of sending (additive
--          increase); throttle: factor the rate is multiplied by (multiplicative decrease)
-- ARGV[6]  throttle: lowest share of the configured rate a throttle may cut to
-- ARGV[7]  now in seconds, or "" for the server's clock (one clock for every worker)
--
-- take returns {granted, wait seconds until a token is due (when 0 granted), current rate};
-- throttle returns {0, seconds the bucket stays shut, current rate}. Reals go back as strings:
-- Redis would truncate a Lua number to an integer.
local key = KEYS[1]
local mode = ARGV[1]
local base = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now = tonumber(ARGV[7])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local state = redis.call('HMGET', key, 'tokens', 'ts', 'rate', 'blocked', 'cut')
local rate = math.min(tonumber(state[3]) or base, base) -- a lowered setting applies at once
local ts = tonumber(state[2]) or now
local blocked = tonumber(state[4]) or 0
local cut = tonumber(state[5]) or -1e18
local capacity = math.max(1, rate * burst)
local tokens = math.min(tonumber(state[1]) or capacity, capacity)
-- ts is pushed to the end of a Retry-After by a throttle, so a shut bucket neither fills nor
-- recovers its rate meanwhile.
local elapsed = math.max(0, now - ts)

local granted = 0
local wait = 0
if mode == 'take' then
  local wanted = tonumber(ARGV[4])
  local recovery = tonumber(ARGV[5])
  if rate < base then
    -- Idle time does not count: the rate climbs back only while sends are being made.
    rate = math.min(base, rate + base * recovery * math.min(elapsed, 1))
    capacity = math.max(1, rate * burst)
  end
  tokens = math.min(capacity, tokens + elapsed * rate)
  if now < blocked then
    wait = blocked - now
  elseif tokens >= 1 then
    granted = math.min(wanted, math.floor(tokens))
    tokens = tokens - granted
  else
    wait = (1 - tokens) / rate
  end
  ts = math.max(ts, now)
elseif mode == 'throttle' then
  local retry_after = tonumber(ARGV[4])
  local factor = tonumber(ARGV[5])
  local floor = tonumber(ARGV[6])
  -- The sends already in flight when the first 429 came back get 429s too: they report the
  -- same overload, so the rate is cut once per second, not once per send.
  if now - cut >= 1 then
    rate = math.max(base * floor, rate * factor)
    cut = now
  end
  tokens = 0
  blocked = math.max(blocked, now + retry_after)
  ts = math.max(now, blocked)
  wait = blocked - now
else
  return redis.error_reply('token_bucket: unknown mode ' .. tostring(mode))
end

redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(ts), 'rate', tostring(rate),
  'blocked', tostring(blocked), 'cut', tostring(cut))
-- A provider nobody sends to any more leaves nothing behind; an hour keeps a lowered rate
-- across any pause a lane takes.
redis.call('EXPIRE', key, 3600)
return {granted, tostring(math.max(wait, 0)), tostring(rate)}
