"""The monitor's Lua scripts: each action, its record, its alert and its audit entry in one
atomic call, in the layout the gate expects (see store/redis_store.py's _PUT_SCRIPT):
stored {"v": version, "d": record} under the next version of `seq`, published
{"k": kind, "v": version, "d": record} on the change channel, audited in the same call.

Monitor actions are fenced by the monitor lease (only its holder acts) and are
compare-and-set on the record they restrict: a rule never takes over what a person set, and
lets go only of the very record the monitor wrote (see _HOLDS).
"""

from __future__ import annotations

from riskgate.store.change_stream import PUBLISH_CHANGE_LUA

# Lifts the version counter past the highest version this monitor has seen: a Redis that
# lost its tail must never hand out a version older than one already applied.
_LIFT = """
local floor = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[1]) or '0') < floor then redis.call('SET', KEYS[1], floor) end
local names = {'NORMAL', 'REDUCE_ONLY', 'HALTED'}
"""
_FENCE = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {'lease'} end
"""

# Holding a restriction (a breaker's state, an account's close-only) for an episode. Several
# episodes may want one record restricted (the 5% and the 10% rule on one symbol; the margin
# and the concentration rule on one account): the record is held for each of them in
# `holds` ({"v": the version of the record the monitor last wrote, "h": {episode: the state it
# wants}}), tightened to the strictest wanted and loosened only as far as the episodes left
# still want, back to NORMAL only when none is left. A record a person set is never taken
# over: the rule only alerts. A record changed since the monitor wrote it is left as it is.
_HOLDS = PUBLISH_CHANGE_LUA + """
local function record_of(hash, field)
  local current = redis.call('HGET', hash, field)
  if not current then return nil, 0 end
  local rec = cjson.decode(current)
  return rec.d, rec.v
end
local function by_rule(d)
  return d ~= nil and string.sub(d.set_by or '', 1, 8) == 'monitor:'
end
-- Published and appended to the change stream (the last of KEYS; its maxlen is written into
-- the script by MonitorWrites: see with_change_stream_maxlen), so a gate that was cut off
-- replays it (store/change_stream.py).
local function write(hash, field, channel, kind, record)
  local v = redis.call('INCR', KEYS[1])
  redis.call('HSET', hash, field, '{"v":' .. v .. ',"d":' .. record .. '}')
  publish_change(KEYS[#KEYS], CHANGE_STREAM_MAXLEN, channel, kind, v, record)
  return v
end
-- Returns the version written (0 = none), whether the episode holds the record, the audit
-- outcome and the action taken in words.
local function hold(t)
  local d, cv = record_of(t.hash, t.field)
  local state = 1
  if d then state = d[t.attr] end
  if state ~= 1 and not by_rule(d) then
    return 0, false, 'refused: ' .. t.noun .. ' is ' .. t.labels[state] .. ', set by ' .. (d.set_by or ''),
      'none: ' .. t.noun .. ' already ' .. t.labels[state] .. ' (set by ' .. (d.set_by or '') .. ')'
  end
  local holds = {v = cv, h = {}}
  if state ~= 1 then
    local raw = redis.call('HGET', t.holds, t.hold_key)
    if raw then
      local found = cjson.decode(raw)
      if found.v == cv then holds = found end
    end
  end
  holds.h[t.episode] = t.wanted
  local v = 0
  local outcome, action
  if state < t.wanted then
    local record = t.fresh
    if d and t.keep then
      d[t.attr] = t.wanted
      d.set_by = t.actor
      d.reason = t.reason
      record = cjson.encode(d)
    end
    v = write(t.hash, t.field, t.channel, t.kind, record)
    holds.v = v
    outcome = 'ok'
    action = t.target .. ' ' .. t.labels[t.wanted] .. ' (version ' .. v .. ')'
  else
    outcome = 'ok: held'
    action = 'none: ' .. t.noun .. ' already ' .. t.labels[state] .. ' (set by ' .. (d.set_by or '') .. ', version '
      .. cv .. '); held by this rule too'
  end
  redis.call('HSET', t.holds, t.hold_key, cjson.encode(holds))
  return v, true, outcome, action
end
-- Returns the version written (0 = none), the audit outcome and the note.
local function release(t)
  local d, cv = record_of(t.hash, t.field)
  local raw = redis.call('HGET', t.holds, t.hold_key)
  local holds = nil
  if raw then holds = cjson.decode(raw) end
  local valid = holds ~= nil and by_rule(d) and holds.v == cv
  if not (valid and holds.h[t.episode]) then
    if holds and not valid then redis.call('HDEL', t.holds, t.hold_key) end
    local outcome = 'left: ' .. t.changed
    if d then
      outcome = outcome .. ' (now ' .. t.labels[d[t.attr]] .. ', set by ' .. (d.set_by or '') .. ', version '
        .. cv .. ')'
    end
    return 0, outcome, t.note .. '; ' .. outcome
  end
  holds.h[t.episode] = nil
  local strictest, others = 1, 0
  for _, wanted in pairs(holds.h) do
    others = others + 1
    if wanted > strictest then strictest = wanted end
  end
  if strictest >= d[t.attr] then
    redis.call('HSET', t.holds, t.hold_key, cjson.encode(holds))
    local outcome = 'left: still held by ' .. others .. ' other episode(s)'
    return 0, outcome, t.note .. '; ' .. outcome
  end
  d[t.attr] = strictest
  d.set_by = t.actor
  d.reason = t.note
  if d.updated_ms ~= nil then d.updated_ms = tonumber(t.now) end
  local v = write(t.hash, t.field, t.channel, t.kind, cjson.encode(d))
  if others == 0 then
    redis.call('HDEL', t.holds, t.hold_key)
    return v, 'ok', t.note .. '; ' .. t.lifted .. ' (version ' .. v .. ')'
  end
  holds.v = v
  redis.call('HSET', t.holds, t.hold_key, cjson.encode(holds))
  return v, 'ok', t.note .. '; ' .. t.noun .. ' down to ' .. t.labels[strictest] .. ' (version ' .. v
    .. '), still held by ' .. others .. ' other episode(s)'
end
"""

# What every rule's episode leaves, in the layout all four episode scripts share (KEYS: 3
# audit, 5 alerts, 6 alert events, 7 episodes): its audit entry (the ARGV from `first` on
# are the evidence pairs), its alert and its events.
_EPISODES = """
local function audited(now, actor, action, target, outcome, first, alert_id, v, maxlen)
  local entry = {'ts_ms', now, 'actor', actor, 'action', action, 'target', target, 'outcome', outcome}
  for i = first, #ARGV do entry[#entry + 1] = ARGV[i] end
  entry[#entry + 1] = 'alert_id'
  entry[#entry + 1] = alert_id
  entry[#entry + 1] = 'version'
  entry[#entry + 1] = tostring(v)
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', unpack(entry))
end
local function open_episode(alert_id, alert, action, v, audit_id, actor, now, episode, held)
  redis.call('HSET', KEYS[5], alert_id, '{"id":' .. cjson.encode(alert_id) .. ',"action":' .. cjson.encode(action)
    .. ',"action_version":' .. v .. ',"audit_id":' .. cjson.encode(audit_id) .. ',' .. string.sub(alert, 2))
  redis.call('XADD', KEYS[6], '*', 'id', alert_id, 'event', 'created', 'actor', actor, 'note', action, 'at_ms', now)
  redis.call('HSET', KEYS[7], episode, cjson.encode({alert = alert_id, version = v, held = held,
    at_ms = tonumber(now)}))
end
local function close_episode(alert_id, actor, now, note)
  local stored = redis.call('HGET', KEYS[5], alert_id)
  if stored then
    local a = cjson.decode(stored)
    a.cleared_ms = tonumber(now)
    a.updated_ms = tonumber(now)
    table.insert(a.history, {actor = actor, action = 'cleared', note = note, at_ms = tonumber(now)})
    redis.call('HSET', KEYS[5], alert_id, cjson.encode(a))
  end
  redis.call('XADD', KEYS[6], '*', 'id', alert_id, 'event', 'cleared', 'actor', actor, 'note', note, 'at_ms', now)
end
"""

# KEYS: 1 seq, 2 breakers, 3 audit, 4 monitor lease, 5 alerts, 6 alert events, 7 episodes,
# 8 alert id counter, 9 holds.
# ARGV: 1 lease token, 2 version floor, 3 symbol, 4 breaker record ('' = alert only), 5 change
# channel, 6 the breaker state number, 7 audit maxlen, 8 episode field, 9 alert (a JSON object
# without id, action, action_version, audit_id), 10 now ms, 11 actor, 12 state name, 13...
# audit evidence pairs.
# Returns {'lease'} (not the holder), {'open', alert id} (an episode is open: nothing done),
# or {'ok', alert id, version (0 = no record written), audit id, action taken}.
FIRE = _FENCE + _LIFT + _HOLDS + _EPISODES + """
local open = redis.call('HGET', KEYS[7], ARGV[8])
if open then return {'open', cjson.decode(open).alert} end
local alert_id = tostring(redis.call('INCR', KEYS[8]))
local v = 0
local held = false
local outcome = 'ok: alert only, no action'
local action = 'none: alert only'
local audit_action = 'alert'
if ARGV[4] ~= '' then
  audit_action = 'trip_breaker'
  v, held, outcome, action = hold({hash = KEYS[2], field = ARGV[3], holds = KEYS[9], hold_key = 'breaker:' .. ARGV[3],
    episode = ARGV[8], wanted = tonumber(ARGV[6]), attr = 'state', labels = names, kind = 'breaker',
    channel = ARGV[5], fresh = ARGV[4], keep = false, actor = ARGV[11], reason = '', noun = 'breaker',
    target = 'symbol ' .. ARGV[3]})
end
local audit_id = audited(ARGV[10], ARGV[11], audit_action, ARGV[3], outcome, 13, alert_id, v, ARGV[7])
open_episode(alert_id, ARGV[9], action, v, audit_id, ARGV[11], ARGV[10], ARGV[8], held)
return {'ok', alert_id, v, audit_id, action}
"""

# KEYS: 1 seq, 2 breakers, 3 audit, 4 monitor lease, 5 alerts, 6 alert events, 7 episodes,
# 8 holds. ARGV: 1 lease token, 2 version floor, 3 symbol, 4 unused, 5 change channel,
# 6 audit maxlen, 7 episode field, 8 actor, 9 now ms, 10 note, 11... audit evidence pairs.
# Ends the episode and lets go of the breaker it held (see _HOLDS).
# Returns {'lease'}, {'none'} (no episode open), or {'ok', alert id, version (0 = breaker not
# touched), audit id, outcome}.
CLEAR = _FENCE + _LIFT + _HOLDS + _EPISODES + """
local raw = redis.call('HGET', KEYS[7], ARGV[7])
if not raw then return {'none'} end
local ep = cjson.decode(raw)
redis.call('HDEL', KEYS[7], ARGV[7])
local v = 0
local outcome = 'ok'
local audit_action = 'end_episode'
local note = ARGV[10]
if ep.held then
  audit_action = 'clear_breaker'
  v, outcome, note = release({hash = KEYS[2], field = ARGV[3], holds = KEYS[8], hold_key = 'breaker:' .. ARGV[3],
    episode = ARGV[7], attr = 'state', labels = names, kind = 'breaker', channel = ARGV[5], actor = ARGV[8],
    note = ARGV[10], now = ARGV[9], noun = 'breaker', lifted = 'breaker back to NORMAL',
    changed = 'the breaker changed since the rule set it'})
end
local audit_id = audited(ARGV[9], ARGV[8], audit_action, ARGV[3], outcome, 11, ep.alert, v, ARGV[6])
close_episode(ep.alert, ARGV[8], ARGV[9], note)
return {'ok', ep.alert, v, audit_id, outcome}
"""

# A person's step on an alert. KEYS: 1 alerts, 2 alert events, 3 audit.
# ARGV: 1 id, 2 action, 3 new state, 4 states it applies to (space separated), 5 actor,
# 6 note, 7 now ms, 8 audit maxlen, 9 method, 10 request (for the audit).
# Returns {'missing'}, {'state', current state} or {'ok', the alert's JSON}; audited each way.
TRANSITION = """
local function audit(outcome)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'ts_ms', ARGV[7], 'actor', ARGV[5],
    'action', ARGV[9], 'target', ARGV[1], 'outcome', outcome, 'request', ARGV[10])
end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  audit('not found')
  return {'missing'}
end
local a = cjson.decode(raw)
if not string.find(' ' .. ARGV[4] .. ' ', ' ' .. a.state .. ' ', 1, true) then
  audit('refused: alert is ' .. a.state)
  return {'state', a.state}
end
local now = tonumber(ARGV[7])
a.state = ARGV[3]
a.updated_ms = now
table.insert(a.history, {actor = ARGV[5], action = ARGV[2], note = ARGV[6], at_ms = now})
local encoded = cjson.encode(a)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'event', ARGV[2], 'actor', ARGV[5], 'note', ARGV[6],
  'state', ARGV[3], 'at_ms', ARGV[7])
audit('ok: ' .. ARGV[3])
return {'ok', encoded}
"""

# A record people set on the monitor (a rule, a funding rate, an account's group), versioned
# like every admin record. KEYS: 1 seq, 2 the record hash, 3 audit. ARGV: 1 kind, 2 version
# floor, 3 field, 4 record JSON, 5 channel, 6 audit maxlen, 7 'nx' (a seed: only where none
# is stored) or '', 8... audit pairs. Returns the new version, or 0 when 'nx' found one.
PUT_RECORD = _LIFT + """
if ARGV[7] == 'nx' and redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 0 end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[3], '{"v":' .. v .. ',"d":' .. ARGV[4] .. '}')
redis.call('PUBLISH', ARGV[5], '{"k":"' .. ARGV[1] .. '","v":' .. v .. ',"d":' .. ARGV[4] .. '}')
local entry = {}
for i = 8, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'version'
entry[#entry + 1] = tostring(v)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(entry))
return v
"""

# The monitor lease. KEYS: 1 lease. ARGV: 1 token, 2 ms. Returns 2 when this monitor took it
# afresh (it must read the open episodes again: it may have lapsed, or Redis lost it), 1 when
# it renewed it, 0 when another monitor holds it.
TAKE_OR_RENEW_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if holder then return 1 end
return 2
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

# An account rule's episode opening. KEYS: 1 seq, 2 controls, 3 audit, 4 monitor lease,
# 5 alerts, 6 alert events, 7 account episodes, 8 alert id counter, 9 liquidation candidates,
# 10 holds.
# ARGV: 1 lease token, 2 version floor, 3 account, 4 what to do ('alert', 'reduce_only' or
# 'candidate'), 5 the controls record to write when the account has none, 6 change channel,
# 7 audit maxlen, 8 episode field, 9 alert (JSON object without id, action, action_version,
# audit_id), 10 now ms, 11 actor, 12 reason, 13 candidate (JSON), 14 candidates maxlen,
# 15... audit evidence pairs.
# reduce_only holds the account's close-only (see _HOLDS; the rest of its controls kept).
# Returns {'lease'}, {'open', alert id} or {'ok', alert id, version (0 = no record written),
# audit id, action taken}.
ACCOUNT_FIRE = _FENCE + _LIFT + _HOLDS + _EPISODES + """
local restrictions = {'NONE', 'REDUCE_ONLY', 'FROZEN'}
local open = redis.call('HGET', KEYS[7], ARGV[8])
if open then return {'open', cjson.decode(open).alert} end
local alert_id = tostring(redis.call('INCR', KEYS[8]))
local v = 0
local held = false
local outcome = 'ok'
local action
local audit_action = 'alert'
if ARGV[4] == 'reduce_only' then
  audit_action = 'restrict_account'
  v, held, outcome, action = hold({hash = KEYS[2], field = ARGV[3], holds = KEYS[10],
    hold_key = 'controls:' .. ARGV[3], episode = ARGV[8], wanted = 2, attr = 'restriction', labels = restrictions,
    kind = 'controls', channel = ARGV[6], fresh = ARGV[5], keep = true, actor = ARGV[11], reason = ARGV[12],
    noun = 'account', target = 'account ' .. ARGV[3]})
elseif ARGV[4] == 'candidate' then
  audit_action = 'liquidation_candidate'
  local id = redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[14], '*', 'account', ARGV[3], 'alert_id', alert_id,
    'd', ARGV[13])
  action = 'liquidation candidate ' .. id .. ' published'
else
  outcome = 'ok: alert only, no action'
  action = 'none: alert only'
end
local audit_id = audited(ARGV[10], ARGV[11], audit_action, ARGV[3], outcome, 15, alert_id, v, ARGV[7])
open_episode(alert_id, ARGV[9], action, v, audit_id, ARGV[11], ARGV[10], ARGV[8], held)
return {'ok', alert_id, v, audit_id, action}
"""

# An account rule's episode ending. KEYS: 1 seq, 2 controls, 3 audit, 4 monitor lease,
# 5 alerts, 6 alert events, 7 account episodes, 8 holds. ARGV: 1 lease token, 2 version floor,
# 3 account, 4 change channel, 5 audit maxlen, 6 episode field, 7 actor, 8 now ms, 9 note,
# 10... audit evidence pairs. Lets go of the close-only the episode held (see _HOLDS).
# Returns {'lease'}, {'none'} or {'ok', alert id, version, audit id, outcome}.
ACCOUNT_CLEAR = _FENCE + _LIFT + _HOLDS + _EPISODES + """
local restrictions = {'NONE', 'REDUCE_ONLY', 'FROZEN'}
local raw = redis.call('HGET', KEYS[7], ARGV[6])
if not raw then return {'none'} end
local ep = cjson.decode(raw)
redis.call('HDEL', KEYS[7], ARGV[6])
local v = 0
local outcome = 'ok'
local audit_action = 'end_episode'
local note = ARGV[9]
if ep.held then
  audit_action = 'lift_restriction'
  v, outcome, note = release({hash = KEYS[2], field = ARGV[3], holds = KEYS[8], hold_key = 'controls:' .. ARGV[3],
    episode = ARGV[6], attr = 'restriction', labels = restrictions, kind = 'controls', channel = ARGV[4],
    actor = ARGV[7], note = ARGV[9], now = ARGV[8], noun = 'account', lifted = 'restriction lifted',
    changed = 'the account controls changed since the rule set them'})
end
local audit_id = audited(ARGV[8], ARGV[7], audit_action, ARGV[3], outcome, 10, ep.alert, v, ARGV[5])
close_episode(ep.alert, ARGV[7], ARGV[8], note)
return {'ok', ep.alert, v, audit_id, outcome}
"""


def with_change_stream_maxlen(script: str, maxlen: int) -> str:
    """A script that publishes gate changes (FIRE, CLEAR, ACCOUNT_FIRE, ACCOUNT_CLEAR), with the
    change stream's cap: their ARGV end in a variable list of audit pairs, so it is written
    into the script rather than passed."""
    return f"local CHANGE_STREAM_MAXLEN = {int(maxlen)}\n" + script
