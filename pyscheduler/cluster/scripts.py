"""The Lua scripts cluster sync runs in Redis.

Each script is atomic, so a hash, the node-id set, the generation counter and
the stream always change together: the generations of a batch's stream
entries are taken from the counter inside the same script, so the entries
of the stream carry consecutive generations, and a reader that sees a jump
knows it missed entries (the stream was trimmed past it, or Redis lost its
data).

A stream entry has one field, ``e``: its parts joined by the unit separator
(0x1F, which no node id, instance id or JSON text contains):
``generation, origin, time, kind, node id`` and then, by kind,
``reg``: info · ``put``: info, status, load, flags · ``hb``: status, load
[, info when services or languages changed] · ``drain``/``disc``: status ·
``rm``: nothing · ``cfg``: config version (empty node id).
One field instead of one per part halves what a reader parses per entry.
"""

from __future__ import annotations

__all__ = ["APPLY_BATCH", "FIND_MISSING", "PRUNE_IDS", "REPAIR_KEYS", "SET_CONFIG"]

# A generation counter that is not 1 to 15 digits (another type, garbage) is
# set to the config version (a generation too) when that one reads, else 0:
# versions then still only grow, and readers see the counter go back and resync.
_COUNTER = r"""
local function readable(v)
  return type(v) == 'string' and #v <= 15 and string.match(v, '^%d+$') ~= nil
end
local function repair_counter(genkey, cfgkey)
  local cur = redis.pcall('GET', genkey)
  if cur == false or readable(cur) then return false end
  local floor = '0'
  if redis.call('TYPE', cfgkey).ok == 'hash' then
    local v = redis.call('HGET', cfgkey, 'version')
    if readable(v) then floor = v end
  end
  redis.call('DEL', genkey)
  redis.call('SET', genkey, floor)
  return true
end
"""

APPLY_BATCH = _COUNTER + r"""
-- KEYS[1] stream, KEYS[2] generation counter, KEYS[3] node-id set,
-- KEYS[4] config hash, KEYS[4 + i] the hash of operation i.
-- ARGV[1] origin instance, ARGV[2] stream MAXLEN (approximate), then per
-- operation: kind, node id, ttl ms, info JSON, status, load, flags, time.
-- A kind starting with '!' is an operator action on a node owned elsewhere
-- (drain, disconnect, remove): it skips the owner check.
-- Returns one verdict per operation: 'ok', 'owner' (another instance owns
-- the node), 'missing' (no hash, or a key of another type than hash: the
-- writer republishes the node whole) or 'replaced' (written, over a key of
-- another type than hash that held the node's place).
local stream, genkey, setkey, cfgkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, maxlen = ARGV[1], ARGV[2]
local n = #KEYS - 4
local out, kinds, owners, wrong = {}, {}, {}, {}
local writes = 0
-- pass 1: the verdicts, following the owner each earlier operation of the
-- batch leaves, so that the batch's generations can be taken at once
for i = 1, n do
  local key = KEYS[4 + i]
  local kind = ARGV[2 + (i - 1) * 8 + 1]
  local forced = string.byte(kind, 1) == 33
  if forced then kind = string.sub(kind, 2) end
  local owner = owners[key]
  if owner == nil then
    owner = redis.pcall('HGET', key, 'owner')
    if type(owner) == 'table' then  -- an error: the key is not a hash (garbage)
      wrong[key] = true
      owner = false
    end
  end
  local verdict = 'ok'
  if kind == 'reg' then
    owner = origin
  elseif kind == 'put' then
    if owner and owner ~= origin then verdict = 'owner' else owner = origin end
  elseif kind == 'rm' then
    if owner and owner ~= origin and not forced then verdict = 'owner' else owner = false end
  elseif kind == 'hb' or kind == 'drain' or kind == 'disc' or kind == 'st' then
    if not owner then verdict = 'missing'
    elseif owner ~= origin and (kind == 'hb' or kind == 'st' or not forced) then verdict = 'owner' end
  else
    return redis.error_reply('unknown operation ' .. kind)
  end
  if verdict == 'ok' and wrong[key] and (kind == 'reg' or kind == 'put' or kind == 'rm') then
    verdict = 'replaced'  -- written over the garbage (the write deletes the key first)
    wrong[key] = nil
  end
  owners[key] = owner
  kinds[i] = kind
  out[i] = verdict
  if verdict ~= 'owner' and verdict ~= 'missing' and kind ~= 'st' then writes = writes + 1 end
end
local g = 0
if writes > 0 then
  -- shared keys holding what this script never writes there are garbage:
  -- deleted before any write (readers then see a gap, or a counter that went
  -- back, and resync)
  if redis.call('TYPE', stream).ok ~= 'stream' then redis.call('DEL', stream) end
  if redis.call('TYPE', setkey).ok ~= 'set' then redis.call('DEL', setkey) end
  repair_counter(genkey, cfgkey)
  g = redis.call('INCRBY', genkey, writes) - writes
end
-- pass 2: the writes
for i = 1, n do
  if out[i] == 'ok' or out[i] == 'replaced' then
    local b = 2 + (i - 1) * 8
    local kind, id, ttl = kinds[i], ARGV[b + 2], ARGV[b + 3]
    local info, status, load, flags, at = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
    local key = KEYS[4 + i]
    if kind == 'st' then
      -- a time-based status change (sweep): the hash only, and no new expiry
      redis.call('HSET', key, 'status', status)
    else
      g = g + 1
      local e
      if kind == 'hb' then
        redis.call('HSET', key, 'status', status, 'hb', load, 'hb_at', at, 'g', g)
        redis.call('PEXPIRE', key, ttl)
        if info ~= '' then
          redis.call('HSET', key, 'info', info)
          e = table.concat({g, origin, at, 'hb', id, status, load, info}, '\31')
        else
          e = table.concat({g, origin, at, 'hb', id, status, load}, '\31')
        end
      elseif kind == 'reg' or kind == 'put' then
        redis.call('DEL', key)
        redis.call('HSET', key, 'owner', origin, 'info', info, 'status', status,
                   'hb', load, 'hb_at', at, 'flags', flags, 'g', g)
        redis.call('PEXPIRE', key, ttl)
        redis.call('SADD', setkey, id)
        if kind == 'reg' then
          e = table.concat({g, origin, at, 'reg', id, info}, '\31')
        else
          e = table.concat({g, origin, at, 'put', id, info, status, load, flags}, '\31')
        end
      elseif kind == 'drain' or kind == 'disc' then
        local f = redis.call('HGET', key, 'flags') or ''
        local mark = (kind == 'drain') and 'd' or 'x'
        if not string.find(f, mark, 1, true) then f = f .. mark end
        redis.call('HSET', key, 'status', status, 'flags', f, 'g', g)
        e = table.concat({g, origin, at, kind, id, status}, '\31')
      else -- rm
        redis.call('DEL', key)
        redis.call('SREM', setkey, id)
        e = table.concat({g, origin, at, 'rm', id}, '\31')
      end
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', e)
    end
  end
end
return out
"""

SET_CONFIG = _COUNTER + r"""
-- Compare-and-set of the pool config document.
-- KEYS[1] config hash, KEYS[2] stream, KEYS[3] generation counter.
-- ARGV[1] expected version (0: no document yet), ARGV[2] document JSON,
-- ARGV[3] origin, ARGV[4] stream MAXLEN, ARGV[5] time.
-- Returns {1, new version} or {0, current version, current document, its origin}.
-- A version is the generation of the change that wrote it, so versions only
-- grow. A stored version that is not 1 to 15 digits (no sign, no leading
-- zero) or is above the generation counter cannot have been written here, and
-- neither can one without a document: it reads as 0, "no version", so a
-- valid document replaces it and every instance adopts that
-- (codec.decode_version and ConfigSync.pull apply the same rule).
-- A config key of another type than hash, a stream key of another type than
-- stream, or a counter that is not 1 to 15 digits is garbage, repaired first.
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then redis.call('DEL', KEYS[1]) end
repair_counter(KEYS[3], KEYS[1])
local top = tonumber(redis.call('GET', KEYS[3]) or '0')
local raw = redis.call('HGET', KEYS[1], 'version')
local cur = 0
local doc = redis.call('HGET', KEYS[1], 'doc') or ''
if doc ~= '' and readable(raw) and string.sub(raw, 1, 1) ~= '0' and tonumber(raw) <= top then
  cur = tonumber(raw)  -- a version without a document is no version either
end
if cur ~= tonumber(ARGV[1]) then
  local who = redis.call('HGET', KEYS[1], 'origin') or ''
  return {0, cur, doc, who}
end
if redis.call('TYPE', KEYS[2]).ok ~= 'stream' then redis.call('DEL', KEYS[2]) end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'version', v, 'doc', ARGV[2], 'origin', ARGV[3], 'at', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e',
           table.concat({v, ARGV[3], ARGV[5], 'cfg', '', v}, '\31'))
return {1, v}
"""

PRUNE_IDS = r"""
-- Remove from the node-id set (KEYS[1]) the ids (ARGV) whose hash (KEYS[1 + i])
-- no longer exists: expired ones. Checked here, atomically, so an id whose
-- node was registered again meanwhile stays.
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
"""

FIND_MISSING = r"""
-- KEYS[1] the epoch key, KEYS[1 + i] node hashes.
-- Returns {epoch or '', i, j, ...}: the epoch and the (1-based) indexes of the
-- hashes that no longer exist. One call instead of one EXISTS per node.
-- An epoch key of another type reads as no epoch (the reader resyncs and repairs it).
local epoch = redis.pcall('GET', KEYS[1])
if type(epoch) == 'table' then epoch = false end
local out = {epoch or ''}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then out[#out + 1] = i - 1 end
end
return out
"""

REPAIR_KEYS = _COUNTER + r"""
-- KEYS[1] stream, KEYS[2] node-id set, KEYS[3] generation counter,
-- KEYS[4] epoch, KEYS[5] config hash.
-- Deletes each that holds another Redis type than cluster sync writes there,
-- and repairs a garbage counter; returns the keys deleted or repaired.
-- The reader runs it at each resync, so a garbage key cannot stall it.
local want = {'stream', 'set', 'string', 'string', 'hash'}
local out = {}
for _, i in ipairs({1, 2, 4, 5}) do
  local t = redis.call('TYPE', KEYS[i]).ok
  if t ~= 'none' and t ~= want[i] then
    redis.call('DEL', KEYS[i])
    out[#out + 1] = KEYS[i]
  end
end
if repair_counter(KEYS[3], KEYS[5]) then out[#out + 1] = KEYS[3] end
return out
"""
