-- wrk: a small OpenAI chat-completions POST, as an SDK sends it.
wrk.method = "POST"
wrk.path = "/v1/openai/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-0123456789abcdef"
wrk.headers["X-Archestra-Agent-Id"] = "bench-agent"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences."}],"temperature":0.2,"max_tokens":128}'
