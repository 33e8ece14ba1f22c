-- wrk: the realistic agent call of the performance issue: an 11 KB chat body (a system
-- prompt, 16 turns, 5 tool schemas, 800 max tokens) with a virtual key and the agent,
-- session and run headers. The body comes from REALISTIC_BODY, the key from
-- REALISTIC_KEY (the bench writes both).
local f = assert(io.open(os.getenv("REALISTIC_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/v1/openai/chat/completions"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("REALISTIC_KEY")
wrk.headers["X-Archestra-Agent-Id"] = "support-agent"
wrk.headers["X-Archestra-Session-Id"] = "conv-8f1c2a"
wrk.headers["X-Archestra-Run-Id"] = "run-2291"
