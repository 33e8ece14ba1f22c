// The official SDKs' streaming clients through the edge (run by test_sdk_streams.py, which
// starts the edge with a policy that blocks send_email). One JSON line per case:
// {"case": name, "ok": bool, "detail": text}. A case passes when the SDK surfaces a
// blocked call as its own API error (status 403: no hang, no parse error) and an allowed
// call arrives whole. Usage: node sdk_streams.mjs BASE_URL (http://127.0.0.1:PORT)
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";

const base = process.argv[2];
const schema = { type: "object", properties: { to: { type: "string" }, body: { type: "string" } } };
const say = (name, ok, detail) => console.log(JSON.stringify({ case: name, ok, detail: String(detail).slice(0, 400) }));

async function expectRefused(name, run, status = 403) {
	try {
		const got = await run();
		say(name, false, `no error; got ${JSON.stringify(got).slice(0, 200)}`);
	} catch (e) {
		const st = e.status ?? e.code;
		say(name, st === status, `${e.constructor.name} status=${st} ${e.message}`);
	}
}

async function expectCall(name, run, want) {
	try {
		const calls = await run();
		const ok = calls.length === 1 && calls[0].name === want && typeof calls[0].args === "object";
		say(name, ok, JSON.stringify(calls));
	} catch (e) {
		say(name, false, `${e.constructor.name} ${e.status ?? ""} ${e.message}`);
	}
}

const timeout = 15000;

// OpenAI: chat completions, streamed; the SDK yields chunks, we assemble tool calls.
const openai = new OpenAI({ apiKey: "sk-sdk-0123456789abcdef0123", baseURL: `${base}/v1/openai`, maxRetries: 0, timeout });
async function openaiStream(tool) {
	const stream = await openai.chat.completions.create({
		model: "gpt-4o", stream: true, messages: [{ role: "user", content: "please" }],
		tools: [{ type: "function", function: { name: tool, parameters: schema } }],
	});
	const calls = {};
	for await (const chunk of stream)
		for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
			const c = (calls[tc.index] ??= { name: "", args: "" });
			c.name += tc.function?.name ?? "";
			c.args += tc.function?.arguments ?? "";
		}
	return Object.values(calls).map((c) => ({ name: c.name, args: JSON.parse(c.args || "{}") }));
}
await expectRefused("openai: a blocked tool call in a stream is an APIError 403", () => openaiStream("send_email"));
await expectCall("openai: an allowed tool call arrives whole", () => openaiStream("lookup_weather"), "lookup_weather");
// The SDK's own stream helper, which assembles the final message itself.
try {
	const runner = openai.chat.completions.stream({
		model: "gpt-4o", messages: [{ role: "user", content: "please" }],
		tools: [{ type: "function", function: { name: "lookup_weather", parameters: schema } }],
	});
	const final = await runner.finalChatCompletion();
	const tc = final.choices[0].message.tool_calls ?? [];
	say("openai: chat.completions.stream() assembles the allowed call", tc.length === 1 &&
	    tc[0].function.name === "lookup_weather" && typeof JSON.parse(tc[0].function.arguments) === "object",
	    JSON.stringify(tc));
} catch (e) {
	say("openai: chat.completions.stream() assembles the allowed call", false, `${e.constructor.name} ${e.message}`);
}
// Text only: no tool rule applies, events pass as they come.
try {
	const stream = await openai.chat.completions.create({ model: "gpt-4o", stream: true,
	                                                        messages: [{ role: "user", content: "hi" }] });
	let text = "";
	for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
	say("openai: a text stream reads whole", text === "Hello from the mock provider.", text);
} catch (e) {
	say("openai: a text stream reads whole", false, `${e.constructor.name} ${e.message}`);
}

// Anthropic: messages, streamed.
const anthropic = new Anthropic({ apiKey: "sk-ant-sdk-0123456789abcdef", baseURL: `${base}/v1/anthropic`, maxRetries: 0,
                                  timeout });
async function anthropicStream(tool) {
	const stream = await anthropic.messages.create({
		model: "claude-sonnet-4-5", max_tokens: 100, stream: true, messages: [{ role: "user", content: "please" }],
		tools: [{ name: tool, input_schema: schema }],
	});
	const blocks = {};
	for await (const ev of stream) {
		if (ev.type === "content_block_start" && ev.content_block.type === "tool_use")
			blocks[ev.index] = { name: ev.content_block.name, json: "" };
		if (ev.type === "content_block_delta" && ev.delta.type === "input_json_delta")
			blocks[ev.index].json += ev.delta.partial_json;
	}
	return Object.values(blocks).map((b) => ({ name: b.name, args: JSON.parse(b.json || "{}") }));
}
await expectRefused("anthropic: a blocked tool_use in a stream is an APIError 403", () => anthropicStream("send_email"));
await expectCall("anthropic: an allowed tool_use arrives whole", () => anthropicStream("lookup_weather"), "lookup_weather");
try {
	const final = await anthropic.messages.stream({
		model: "claude-sonnet-4-5", max_tokens: 100, messages: [{ role: "user", content: "please" }],
		tools: [{ name: "lookup_weather", input_schema: schema }],
	}).finalMessage();
	const tu = final.content.filter((b) => b.type === "tool_use");
	say("anthropic: messages.stream() assembles the allowed call", tu.length === 1 && tu[0].name === "lookup_weather",
	    JSON.stringify(tu));
} catch (e) {
	say("anthropic: messages.stream() assembles the allowed call", false, `${e.constructor.name} ${e.message}`);
}

// Gemini: generateContentStream (alt=sse).
const ai = new GoogleGenAI({ apiKey: "AIza-sdk-0123456789abcdef", httpOptions: { baseUrl: `${base}/v1/gemini`,
                                                                                  timeout } });
async function geminiStream(tool) {
	const stream = await ai.models.generateContentStream({
		model: "gemini-2.0-flash", contents: "please",
		config: { tools: [{ functionDeclarations: [{ name: tool, parameters: schema }] }] },
	});
	const calls = [];
	for await (const chunk of stream)
		for (const fc of chunk.functionCalls ?? []) calls.push({ name: fc.name, args: fc.args ?? {} });
	return calls;
}
await expectRefused("gemini: a blocked functionCall in a stream is an ApiError 403", () => geminiStream("send_email"));
await expectCall("gemini: an allowed functionCall arrives whole", () => geminiStream("lookup_weather"), "lookup_weather");
