-- The shared matchmaking pool, run by Redis as one script call per input, so that every input
-- is atomic: no one is ever in two pairs, and two compatible waiting users never both stay
-- waiting, whichever node their inputs came through.
--
-- The rules are those of signaling/matchmaking.py (see its docstring for the invariant and why
-- each of the four ways of becoming compatible tries to pair the user concerned); the tests
-- check this script against the same independent model. The caller passes the clock (seconds,
-- shared by the nodes) and a random seed: the script reads neither Redis's clock nor its own
-- randomness, so a test can drive any interleaving of users and time.
--
-- ARGV: prefix, op, now, repair_cooldown_s, interest_fallback_s, heartbeat_timeout_s, seed,
-- then the op's arguments. Every event is returned to the caller and published, in the order
-- the rules make it, on the channel of each node that holds a user it concerns (PREFIX node:ID),
-- as a JSON array: ["paired", first, second, pair, then node, region, hide ("1": never a
-- direct call), device and network of first and of second], ["lost", user, partner, reason]
-- or ["expired", user]. The device and network (``signaling.strikes.Person``) let a member's
-- partner report it by its device, wherever each is connected.
--
-- Keys (PREFIX omitted): u:ID hash (state, partner, interests as JSON, since, relaxed, gen,
-- node, region, hide, who, net); tag:T and relaxed sets of waiting users; hb zset of last
-- activity (its members are exactly the users known); t:fallback zset of "ID|gen" by when
-- interests stop mattering; t:cooldown zset of "A|B" by when a re-pair cool-down ends, each
-- with its cd:A|B key (value: until; TTL: garbage collection only); nodes set; nodeusers:NODE
-- sets; alive:NODE presence keys (set by each node); ticked (TTL: one tick period, while
-- the timers have run in it). No counts are kept: every input would pay for them, and only
-- tests ask ('counts' walks the users).

local P = ARGV[1]
local op = ARGV[2]
local now = tonumber(ARGV[3])
local COOLDOWN = tonumber(ARGV[4])
local FALLBACK = tonumber(ARGV[5])
local TIMEOUT = tonumber(ARGV[6])
local seed = tonumber(ARGV[7])
local events = {}

-- numbers go to Redis as exact decimal strings: the default conversion keeps 14 digits only
local function num(x) return string.format('%.17g', x) end
local function uk(u) return P .. 'u:' .. u end
local function field(u, f) return redis.call('HGET', uk(u), f) end

local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return math.floor(seed / 65536) % n + 1
end

-- `nodes`: the users' nodes where the caller has read them already
local function emit(event, users, nodes)
  events[#events + 1] = event
  local payload = cjson.encode(event)
  local told = {}
  for i, u in ipairs(users) do
    local node = nodes and nodes[i] or field(u, 'node')
    if node and node ~= '' and not told[node] then
      told[node] = true
      redis.call('PUBLISH', P .. 'node:' .. node, payload)
    end
  end
end

local function interests(u)
  local raw = field(u, 'interests')
  if not raw or raw == '' then return {} end
  return cjson.decode(raw)
end

local function pair_key(a, b)
  if a < b then return a .. '|' .. b end
  return b .. '|' .. a
end

local function in_cooldown(a, b)
  local until_ = redis.call('GET', P .. 'cd:' .. pair_key(a, b))
  return until_ and tonumber(until_) > now
end

-- out of the queue; the caller sets u's new state (or deletes it). `tags`: u's interests
-- where the caller has read them already
local function stop_waiting(u, tags)
  for _, tag in ipairs(tags or interests(u)) do redis.call('SREM', P .. 'tag:' .. tag, u) end
  redis.call('SREM', P .. 'relaxed', u)
end

local function random_allowed(u, candidates)
  local allowed = {}
  for _, other in ipairs(candidates) do
    if other ~= u and not in_cooldown(u, other) then allowed[#allowed + 1] = other end
  end
  if #allowed == 0 then return nil end
  table.sort(allowed)
  return allowed[rand(#allowed)]
end

-- a uniformly random compatible waiting user; shared interests are preferred
local function pick_partner(u, tags, relaxed)
  local shared, seen = {}, {}
  for _, tag in ipairs(tags) do
    for _, other in ipairs(redis.call('SMEMBERS', P .. 'tag:' .. tag)) do
      if not seen[other] then
        seen[other] = true
        shared[#shared + 1] = other
      end
    end
  end
  local choice = random_allowed(u, shared)
  if choice == nil and relaxed then
    choice = random_allowed(u, redis.call('SMEMBERS', P .. 'relaxed'))
  end
  return choice
end

-- `tags` and `relaxed`: u's, where the caller knows them (nil: read here)
local function try_pair(u, tags, relaxed)
  tags = tags or interests(u)
  if relaxed == nil then relaxed = field(u, 'relaxed') == '1' end
  local other = pick_partner(u, tags, relaxed)
  if other == nil then return end
  stop_waiting(u, tags)
  stop_waiting(other)
  redis.call('HSET', uk(u), 'state', 'paired', 'partner', other)
  redis.call('HSET', uk(other), 'state', 'paired', 'partner', u)
  local pair = string.format('p%d-%x', redis.call('INCR', P .. 'pairseq'), rand(2147483647))
  local event, nodes = {'paired', u, other, pair}, {}
  for _, member in ipairs({u, other}) do
    local facts = redis.call('HMGET', uk(member), 'node', 'region', 'hide', 'who', 'net')
    for i = 1, 5 do event[#event + 1] = facts[i] or '' end
    nodes[#nodes + 1] = facts[1] or ''
  end
  emit(event, {u, other}, nodes)
end

local function start_waiting(u)
  local gen = redis.call('HINCRBY', uk(u), 'gen', 1)
  local tags = interests(u)
  local relaxed = #tags == 0 or FALLBACK <= 0
  redis.call('HSET', uk(u), 'state', 'waiting', 'since', num(now), 'relaxed', relaxed and '1' or '0')
  for _, tag in ipairs(tags) do redis.call('SADD', P .. 'tag:' .. tag, u) end
  if relaxed then
    redis.call('SADD', P .. 'relaxed', u)
  else
    redis.call('ZADD', P .. 't:fallback', num(now + FALLBACK), u .. '|' .. gen)
  end
  try_pair(u, tags, relaxed)
end

-- `cooldown`: keep the two apart for a while; pointless when one of them is gone
local function unpair(a, b, cooldown)
  for _, u in ipairs({a, b}) do
    redis.call('HSET', uk(u), 'state', 'idle')
    redis.call('HDEL', uk(u), 'partner')
  end
  if cooldown and COOLDOWN > 0 then
    local key = pair_key(a, b)
    local ttl_ms = math.ceil(COOLDOWN * 1000) + 60000
    redis.call('SET', P .. 'cd:' .. key, num(now + COOLDOWN), 'PX', ttl_ms)
    redis.call('ZADD', P .. 't:cooldown', num(now + COOLDOWN), key)
  end
end

-- an input from `u`: its state and partner (nil, nil: no such user), and it is alive
local function touch(u)
  local facts = redis.call('HMGET', uk(u), 'state', 'partner')
  if not facts[1] then return nil, nil end
  redis.call('ZADD', P .. 'hb', 'GT', num(now), u)
  return facts[1], facts[2] or nil
end

-- `expect`: the partner the caller's node believed `u` had; when `u` is with someone else by
-- now (a pairing the node has not heard of yet), the input was about a call already over
local function stale(state, partner, expect)
  return expect ~= '' and state == 'paired' and partner ~= expect
end

-- Next and report: leave the partner (if any) and look again, presser first
local function part(u, reason, state, partner)
  if state == 'waiting' then return end
  if partner then unpair(u, partner, true) end
  start_waiting(u)
  if partner then
    emit({'lost', partner, u, reason}, {partner})
    start_waiting(partner)
  end
end

-- take `u` (in `state`, with `partner`) out of the queue or its pair, idle unless the
-- caller deletes it; a partner is told and re-queued
local function remove_from_play(u, reason, state, partner, deleted)
  if state == 'waiting' then
    stop_waiting(u)
    if not deleted then redis.call('HSET', uk(u), 'state', 'idle') end
  elseif state == 'paired' then
    unpair(u, partner, reason == 'leave')
    emit({'lost', partner, u, reason}, {partner})
    start_waiting(partner)
  end
end

local function forget(u, node)
  node = node or field(u, 'node')
  if node and node ~= '' then redis.call('SREM', P .. 'nodeusers:' .. node, u) end
  redis.call('DEL', uk(u))
  redis.call('ZREM', P .. 'hb', u)
end

-- users silent for the heartbeat time-out, and every user of a node whose presence lapsed, go;
-- all are removed before any partner is re-queued, so no one is paired with someone who goes
-- in the same instant
local function expire(now_)
  local due, is_due = {}, {}
  local function add(u)
    if not is_due[u] and redis.call('EXISTS', uk(u)) == 1 then
      is_due[u] = true
      due[#due + 1] = u
    end
  end
  local silent = redis.call('ZRANGEBYSCORE', P .. 'hb', '-inf', num(now_ - TIMEOUT + 1), 'WITHSCORES')
  for i = 1, #silent, 2 do
    if tonumber(silent[i + 1]) + TIMEOUT <= now_ then add(silent[i]) end
  end
  for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
    if redis.call('EXISTS', P .. 'alive:' .. node) == 0 then
      for _, u in ipairs(redis.call('SMEMBERS', P .. 'nodeusers:' .. node)) do add(u) end
      redis.call('SREM', P .. 'nodes', node)
    end
  end
  local orphans = {}
  for _, u in ipairs(due) do
    local state = field(u, 'state')
    if state == 'waiting' then
      stop_waiting(u)
    elseif state == 'paired' then
      local partner = field(u, 'partner')
      unpair(u, partner, false)
      if not is_due[partner] then
        emit({'lost', partner, u, 'timeout'}, {partner})
        orphans[#orphans + 1] = partner
      end
    end
  end
  for _, u in ipairs(due) do
    emit({'expired', u}, {u})
    forget(u)
  end
  for _, u in ipairs(orphans) do start_waiting(u) end
end

local function relax()
  local due = redis.call('ZRANGEBYSCORE', P .. 't:fallback', '-inf', num(now))
  for _, member in ipairs(due) do
    redis.call('ZREM', P .. 't:fallback', member)
    local sep = string.find(member, '|', 1, true)
    local u, gen = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
    if field(u, 'state') == 'waiting' and field(u, 'gen') == gen then
      redis.call('HSET', uk(u), 'relaxed', '1')
      redis.call('SADD', P .. 'relaxed', u)
      try_pair(u, nil, true)
    end
  end
end

local function end_cooldowns()
  local due = redis.call('ZRANGEBYSCORE', P .. 't:cooldown', '-inf', num(now))
  for _, key in ipairs(due) do
    redis.call('ZREM', P .. 't:cooldown', key)
    redis.call('DEL', P .. 'cd:' .. key)
    local sep = string.find(key, '|', 1, true)
    for _, u in ipairs({string.sub(key, 1, sep - 1), string.sub(key, sep + 1)}) do
      if field(u, 'state') == 'waiting' then
        try_pair(u)
        break
      end
    end
  end
end

local function first_score(key)
  local first = redis.call('ZRANGE', P .. key, 0, 0, 'WITHSCORES')
  if #first == 0 then return nil end
  return tonumber(first[2])
end

local function unknown(u) return redis.error_reply('unknown user ' .. u) end

if op == 'connect' then
  local u, node, region = ARGV[8], ARGV[9], ARGV[10]
  local who, net = ARGV[11] or '', ARGV[12] or ''
  if redis.call('EXISTS', uk(u)) == 1 then return redis.error_reply('already connected ' .. u) end
  redis.call('HSET', uk(u), 'state', 'idle', 'gen', 0, 'node', node, 'region', region,
    'who', who, 'net', net)
  redis.call('ZADD', P .. 'hb', num(now), u)
  if node ~= '' then
    redis.call('SADD', P .. 'nodes', node)
    redis.call('SADD', P .. 'nodeusers:' .. node, u)
  end
elseif op == 'join' then
  local u, tags, region, hide = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
  local state = touch(u)
  if not state then return unknown(u) end
  if state == 'paired' then return redis.error_reply('in a call') end
  if state == 'waiting' then stop_waiting(u) end
  redis.call('HSET', uk(u), 'interests', tags, 'region', region, 'hide', hide)
  start_waiting(u)
elseif op == 'next' or op == 'report' or op == 'leave' then
  local u, expect = ARGV[8], ARGV[9]
  local state, partner = touch(u)
  if not state then return unknown(u) end
  if op == 'report' and state ~= 'paired' then return redis.error_reply('no partner') end
  -- Stop always stops; Next and report are about the partner the node knew
  if op ~= 'leave' and stale(state, partner, expect) then return events end
  if op == 'leave' then
    remove_from_play(u, 'leave', state, partner)
  else
    part(u, op, state, partner)
  end
elseif op == 'disconnect' then
  local u = ARGV[8]
  local facts = redis.call('HMGET', uk(u), 'state', 'partner', 'node')
  if facts[1] then
    remove_from_play(u, 'disconnect', facts[1], facts[2] or nil, true)
    forget(u, facts[3] or nil)
  end
elseif op == 'restore' then
  -- a pair this Redis forgot (it restarted empty), told by a member's node: once both are
  -- back and neither is in play, they are a pair again; nobody is told (both nodes know)
  local u, partner = ARGV[8], ARGV[9]
  if redis.call('EXISTS', uk(u)) == 1 and redis.call('EXISTS', uk(partner)) == 1
      and field(u, 'state') == 'idle' and field(partner, 'state') == 'idle' then
    redis.call('HSET', uk(u), 'state', 'paired', 'partner', partner)
    redis.call('HSET', uk(partner), 'state', 'paired', 'partner', u)
  end
elseif op == 'heartbeat' then
  -- XX: only users still known (hb holds exactly those); one command per thousand users
  -- (unpack's limit is a few thousand values)
  local at, scores = num(now), {}
  for i = 8, #ARGV do
    scores[#scores + 1] = at
    scores[#scores + 1] = ARGV[i]
    if #scores >= 2000 or i == #ARGV then
      redis.call('ZADD', P .. 'hb', 'XX', 'GT', unpack(scores))
      scores = {}
    end
  end
elseif op == 'tick' then
  -- every node calls it every ARGV[8] ms (if given): the first call in each such period does
  -- the work for all, so that the timers' cost does not grow with the number of nodes
  local period_ms = ARGV[8]
  if period_ms and not redis.call('SET', P .. 'ticked', '1', 'PX', period_ms, 'NX') then
    return events
  end
  expire(now)
  relax()
  end_cooldowns()
elseif op == 'next_timer' then
  local at = first_score('hb')
  if at then at = at + TIMEOUT end
  for _, key in ipairs({'t:fallback', 't:cooldown'}) do
    local score = first_score(key)
    if score and (at == nil or score < at) then at = score end
  end
  if at == nil then return false end
  return num(at)
elseif op == 'user' then
  local u = ARGV[8]
  if redis.call('EXISTS', uk(u)) == 0 then return false end
  return {field(u, 'state'), field(u, 'partner') or ''}
elseif op == 'counts' then
  -- for tests: counted by walking every user, where keeping counts would cost each input
  local counts = {waiting = 0, paired = 0}
  local users = redis.call('ZRANGE', P .. 'hb', 0, -1)
  for _, u in ipairs(users) do
    local state = field(u, 'state')
    if counts[state] then counts[state] = counts[state] + 1 end
  end
  return {counts.waiting, counts.paired / 2, #users}
else
  return redis.error_reply('unknown op ' .. op)
end
return events
