// Talking to this server's API: the bearer key, OpenAI-shaped errors, uploads with progress
// and Server-Sent Events read through fetch (EventSource cannot send an Authorization header).

const KEY_STORAGE = "gigaam-api-key";

/** An API failure: HTTP status (0 = the server could not be reached) and the envelope fields. */
export class ApiError extends Error {
  constructor(status, error = {}, retryAfter = null) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code ?? null;
    this.type = error.type ?? null;
    this.param = error.param ?? null;
    this.retryAfter = retryAfter;
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key is not kept; the next 401 asks again
  }
}

let unauthorizedHandler = null;

/** Called with the ApiError whenever any call answers 401 (the page asks for the key). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function withAuth(headers = {}) {
  const result = new Headers(headers);
  const key = getKey();
  if (key) result.set("Authorization", `Bearer ${key}`);
  return result;
}

function retryAfterOf(value) {
  const seconds = Number.parseInt(value ?? "", 10);
  return Number.isFinite(seconds) ? seconds : null;
}

function errorFromBody(status, text, retryAfter) {
  let error = {};
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === "object" && parsed.error) error = parsed.error;
  } catch {
    error = { message: text.slice(0, 200) };
  }
  return new ApiError(status, error, retryAfter);
}

function fail(error) {
  if (error.status === 401 && unauthorizedHandler) unauthorizedHandler(error);
  throw error;
}

/** fetch() with the key; resolves to the Response when 2xx, else throws ApiError. */
export async function request(path, { method = "GET", headers = {}, body, signal } = {}) {
  let response;
  try {
    response = await fetch(path, { method, headers: withAuth(headers), body, signal, cache: "no-store" });
  } catch (cause) {
    if (cause?.name === "AbortError") throw cause;
    throw new ApiError(0, { message: String(cause?.message || cause), code: "network" });
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    fail(errorFromBody(response.status, text, retryAfterOf(response.headers.get("Retry-After"))));
  }
  return response;
}

export async function getJson(path, options) {
  const response = await request(path, options);
  return response.json();
}

/**
 * A URL of a job's audio that the <audio> element can fetch by itself (it cannot send the key):
 * {url, expires_at, expires_in}; signed and short-lived when the server has an API_KEY.
 */
export function audioLink(jobId) {
  return getJson(`/v1/jobs/${encodeURIComponent(jobId)}/audio/link`, { method: "POST" });
}

/**
 * POST a file as a new job (multipart `file`, then the [name, value] pairs of `fields`, e.g.
 * diarize). XMLHttpRequest rather than fetch because only it reports upload progress. Returns
 * {promise, abort}; onProgress gets a fraction 0..1.
 */
export function uploadJob(file, onProgress, fields = []) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "/v1/jobs");
    const key = getKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, { message: "The server sent an unreadable answer" }));
        }
        return;
      }
      const error = errorFromBody(
        xhr.status,
        xhr.responseText || "",
        retryAfterOf(xhr.getResponseHeader("Retry-After")),
      );
      try {
        fail(error);
      } catch (thrown) {
        reject(thrown);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "network error", code: "network" }));
    xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, value] of fields) form.append(name, value);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/** Split an SSE text buffer into complete blocks; returns [blocks, rest]. */
export function splitBlocks(buffer) {
  const normalized = buffer.replace(/\r\n?/g, "\n");
  const parts = normalized.split("\n\n");
  const rest = parts.pop();
  return [parts, rest];
}

/** One SSE block → {event, data, id} (data joined over its lines), or null for comments only. */
export function parseBlock(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length && event === "message") return null;
  return { event, data: data.join("\n"), id };
}

const TERMINAL_EVENTS = new Set(["job.completed", "job.failed", "job.cancelled"]);

/**
 * Follow a job's events until it ends. Reconnects with Last-Event-ID after a dropped connection
 * (server restart, network switch); onState("offline"|"online") tells the page. Resolves with
 * the terminal event's name, or null when aborted or the job is gone.
 */
export async function followEvents(jobId, { onEvent, onState, signal }) {
  let lastId = null;
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await request(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
      onState?.("online");
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const [blocks, rest] = splitBlocks(buffer);
        buffer = rest;
        for (const block of blocks) {
          const parsed = parseBlock(block);
          if (!parsed) continue;
          if (parsed.id) lastId = parsed.id;
          let data = null;
          try {
            data = parsed.data ? JSON.parse(parsed.data) : null;
          } catch {
            data = null;
          }
          onEvent(parsed.event, data);
          if (TERMINAL_EVENTS.has(parsed.event)) {
            reader.cancel().catch(() => {});
            return parsed.event;
          }
        }
      }
      // the stream ended without a final event: the server went away mid-job; reconnect
    } catch (error) {
      if (error?.name === "AbortError" || signal.aborted) return null;
      if (error instanceof ApiError && error.status !== 0 && error.status < 500) {
        if (error.status === 404) return null;
        throw error;
      }
      onState?.("offline");
    }
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    delay = Math.min(delay * 2, 10000);
  }
  return null;
}
