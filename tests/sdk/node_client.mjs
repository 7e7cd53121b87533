// Drive one installed openai-node version against a running gigaam-api server and print one
// JSON summary on stdout; tests/test_sdk_compat.py asserts on it.
//
// Why a script and not raw HTTP: Node clients differ from the Python SDK in ways only the real
// SDK shows (see docs/api.md): the response parser picks JSON only for application/json
// content types (an SRT body served as JSON comes back as a mangled object), a Buffer upload puts
// the file part first, fs.createReadStream uploads go out chunked, and SSE is iterated by the
// SDK's own decoder. So every value below is what a Node application would actually see.
//
// Usage: node node_client.mjs <sdk-prefix> <base-url> <api-key> <audio-file> <keyword>
// <sdk-prefix> is a folder holding node_modules/openai (one `npm install --prefix`).

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [prefix, baseURL, apiKey, audioPath, keyword] = process.argv.slice(2);
if (!keyword) {
  console.error("usage: node node_client.mjs <sdk-prefix> <base-url> <api-key> <audio-file> <keyword>");
  process.exit(2);
}

// Resolve the SDK from the version's own prefix, not from this script's folder.
const require = createRequire(path.join(path.resolve(prefix), "resolver.js"));
const sdk = require("openai");
const OpenAI = sdk.OpenAI ?? sdk.default ?? sdk;
const { toFile } = sdk;
const BadRequestError = sdk.BadRequestError ?? OpenAI.BadRequestError;
const AuthenticationError = sdk.AuthenticationError ?? OpenAI.AuthenticationError;
const manifest = path.join(path.resolve(prefix), "node_modules", "openai", "package.json");
const version = JSON.parse(fs.readFileSync(manifest, "utf8")).version;

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const audio = fs.readFileSync(audioPath);
const name = path.basename(audioPath);

/** A Buffer upload: file part first in v5+, octet-stream part type. */
const buffered = () => toFile(audio, name);
/** A stream upload: chunked, no Content-Length in v7. */
const streamed = () => fs.createReadStream(audioPath);

/** What the SDK handed back: its JS type and the value (objects kept as they were parsed). */
const seen = (value) => ({ type: typeof value, value });

async function errorOf(call) {
  try {
    await call();
    return { raised: false };
  } catch (e) {
    return {
      raised: true,
      name: e?.constructor?.name ?? null,
      is_bad_request: e instanceof BadRequestError,
      is_authentication: e instanceof AuthenticationError,
      status: e?.status ?? null,
      param: e?.param ?? null,
      code: e?.code ?? null,
    };
  }
}

const create = (params) => client.audio.transcriptions.create({ model: "whisper-1", ...params });

const summary = { version };
summary.json_buffer = seen(await create({ file: await buffered() }));
summary.json_stream = seen(await create({ file: streamed() }));
for (const format of ["text", "srt", "vtt"]) {
  summary[format] = seen(await create({ file: await buffered(), response_format: format }));
}
summary.verbose_json = seen(
  await create({
    file: streamed(),
    response_format: "verbose_json",
    timestamp_granularities: ["word", "segment"],
  }),
);

const events = await create({ file: streamed(), model: "gpt-4o-transcribe", stream: true });
const types = [];
const deltas = [];
let done = null;
for await (const event of events) {
  types.push(event.type);
  if (event.type === "transcript.text.delta") deltas.push(event.delta);
  if (event.type === "transcript.text.done") done = event;
}
summary.stream = { types, deltas, done_text: done?.text ?? null };

summary.bad_format = await errorOf(async () =>
  create({ file: await buffered(), response_format: "xml" }),
);
// keywords: every version passes the field through to the form as a list (keywords[] parts)
summary.keywords = seen(await create({ file: await buffered(), keywords: [keyword] }));
summary.bad_keyword = await errorOf(async () =>
  create({ file: await buffered(), keywords: ["Сбербанк", "Moscow"] }),
);
const wrongKey = new OpenAI({ baseURL, apiKey: `${apiKey}-wrong`, maxRetries: 0 });
summary.bad_key = await errorOf(async () =>
  wrongKey.audio.transcriptions.create({ file: await buffered(), model: "whisper-1" }),
);

process.stdout.write(JSON.stringify(summary));
