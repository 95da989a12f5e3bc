-- GCRA (generic cell rate algorithm) throughput limit for one provider, shared by every worker on every host.
--
-- KEYS[1]  the provider's throttle key, e.g. "hexavox:throttle:<provider>"; holds the theoretical arrival
--          time (TAT) in microseconds of Redis server time.
-- ARGV[1]  emission interval in microseconds: 1e6 / messages per second.
-- ARGV[2]  burst tolerance in microseconds: (burst - 1) * interval; 0 lets no two sends closer than one interval.
--
-- Returns 0 when a slot is granted now (the TAT moves one interval on), otherwise the microseconds until the next
-- slot may be free; nothing is reserved then, the caller sleeps and asks again.
-- Time comes from Redis TIME, so clocks of worker hosts never matter. The key expires once it is in the past.

local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end

local allow_at = tat - tolerance
if now < allow_at then
    return math.ceil(allow_at - now)
end

local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
