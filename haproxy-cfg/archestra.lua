-- archestra.lua: HAProxy's side of streamed calls. It extracts and forwards,
-- never decides: the agent decided at the request (txn.arch.* variables), and the
-- meter (the call's end-of-call record) carries what this file extracts back to
-- the agents, like the usage providers.cfg reads from whole responses.
--
-- Filter "archestra-stream", declared by providers.cfg in each provider's
-- streaming backend (llm_<name>.stream), its arguments generated from the agent's
-- usage table: FIELD=PATH[,PATH...], FIELD one of the txn.arch usage variables,
-- and insert=TEXT.
--   request:  when the agent set txn.arch.add_usage (an offset in the body), asks
--             the provider for usage by inserting TEXT there (OpenAI's
--             stream_options.include_usage; the backend's rule before it has
--             added its length to Content-Length);
--   response: a text/event-stream passes as it comes, event by event; each
--             event that carries usage is read with HAProxy's json_query at the
--             given paths (later events override earlier ones), the time to the
--             first byte of body is txn.arch.ttft (ms), and when the gateway
--             asked for usage itself, the usage-only event the client did not ask
--             for is removed.
-- Any other response (not event-stream) passes untouched.

local MAX_EVENT = 1024 * 1024   -- an event longer than this is not read (it still passes)

local Stream = {}
Stream.id = "archestra-stream"
Stream.flags = filter.FLT_CFG_FL_HTX
Stream.__index = Stream

function Stream:new()
	local s = {}
	setmetatable(s, Stream)
	s.paths = self.paths or {} -- from the filter line (register_filter below)
	s.insert = self.insert
	s.carry = ""        -- the start of an event whose end has not come yet
	s.skip = false      -- the current event is over MAX_EVENT: not read
	s.first = nil       -- ms when the request went upstream
	s.ttft = false
	s.strip = false     -- remove the usage-only event (the client did not ask for it)
	s.insert_at = nil
	return s
end

local function now_ms()
	local t = core.now()
	return t.sec * 1000 + t.usec // 1000
end

function Stream:start_analyze(txn, chn)
	if not chn:is_resp() then
		self.first = now_ms()
		local at = txn:get_var("txn.arch.add_usage")
		if at and self.insert then
			self.insert_at = tonumber(at)
			self.strip = self.insert_at ~= nil
			filter.register_data_filter(self, chn)
		end
	end
end

function Stream:http_headers(txn, msg)
	if not msg.channel:is_resp() then
		return filter.CONTINUE
	end
	-- A sample fetch, not msg:get_headers(): a stream the frontend held whole for
	-- the agent (txn.arch.hold) is past its headers by now, where that one errs.
	local ct = (txn.sf:res_hdr("content-type") or ""):lower()
	if ct:find("text/event-stream", 1, true) == 1 then
		filter.register_data_filter(self, msg.channel)
	end
	return filter.CONTINUE
end

-- Reads one event's data lines for usage; returns true when the event is the
-- usage-only chunk OpenAI adds for stream_options.include_usage.
function Stream:event(txn, ev)
	if not ev:find("sage", 1, true) then -- "usage", "usageMetadata"
		return false
	end
	local data = {}
	for line in ev:gmatch("[^\r\n]+") do
		local d = line:match("^data: ?(.*)$")
		if d then data[#data + 1] = d end
	end
	local json = table.concat(data, "\n")
	if json == "" or json == "[DONE]" then
		return false
	end
	local found = false
	for var, paths in pairs(self.paths) do
		for _, p in ipairs(paths) do
			local v = txn.c:json_query(json, p, "int")
			if v then
				txn:set_var("txn.arch." .. var, v)
				found = true
				break
			end
		end
	end
	return found and self.strip and json:find('"choices":%s*%[%s*%]') ~= nil
end

-- What http_payload returns is how much of this call's data HAProxy may send on
-- (nothing returned: all of it); what is held stays in HAProxy's buffer.
function Stream:http_payload(txn, msg)
	local len = msg:input()
	if not msg.channel:is_resp() then
		if self.insert_at then
			if len < self.insert_at then
				return 0 -- the body is buffered whole: the rest is coming
			end
			msg:insert(self.insert, self.insert_at)
			self.insert_at = nil
		end
		return
	end
	if not self.ttft and len > 0 then
		self.ttft = true
		if self.first then
			txn:set_var("txn.arch.ttft", now_ms() - self.first)
		end
	end
	if len == 0 then
		return
	end
	-- Events end with a blank line; each complete one is read. Passing on
	-- everything at once (the usual case), the end of an event not complete yet
	-- is kept here (carry); when an event may have to be removed, it stays in
	-- HAProxy's buffer instead until it is complete.
	local buf, base = msg:body(0, len) or "", 0
	if not self.strip then
		base = #self.carry
		buf = self.carry .. buf
	end
	local pos, done, cut = 1, 0, {}
	while true do
		local s, e = buf:find("\r?\n\r?\n", pos)
		if not s then break end
		if not self.skip and self:event(txn, buf:sub(pos, e)) then
			cut[#cut + 1] = { pos - 1, e - pos + 1 }
		end
		self.skip = false
		pos = e + 1
		done = e - base
	end
	if not self.strip then
		self.carry = buf:sub(pos)
		if #self.carry > MAX_EVENT then
			self.carry, self.skip = "", true
		end
		return
	end
	for i = #cut, 1, -1 do
		msg:remove(cut[i][1], cut[i][2])
		done = done - cut[i][2]
	end
	if msg:eom() or msg:is_full() or not msg:may_recv() or len - done > MAX_EVENT then
		done = msg:input() -- the end, or an event HAProxy's buffer cannot hold: it goes as it is
	end
	if done > 0 then
		msg:forward(done)
	end
	return 0
end

core.register_filter("archestra-stream", Stream, function(s, args)
	s.paths = {}
	for _, a in ipairs(args) do
		local text = a:match("^insert=(.+)$")
		if text then s.insert = text end
		local var, list = a:match("^(u_[a-z]+)=(.+)$")
		if var then
			local paths = {}
			for p in list:gmatch("[^,]+") do paths[#paths + 1] = p end
			s.paths[var] = paths
		end
	end
	return s
end)
