// Record: the microphone streams to the server's live door (OpenAI's Realtime transcription,
// /v1/realtime?intent=transcription), the text appears as it is spoken (interim words greyed,
// each turn's final in normal text), and Stop keeps the recording as a job that opens like an
// uploaded file. The door's `save=true` (an extension of this server) keeps the session's
// audio; the client event `session.finish` ends the audio, and the server answers
// `session.finished` with the saved job once the last turn's final is sent.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { ensureStreams } from "./jobs.js";
import { RATE, reason, startMic, unavailable } from "./mic.js";
import { liveTurn, putJob, setRecording, state, subscribe } from "./state.js";
import { $, clock, describe } from "./ui.js";
import { closeView, openView } from "./view.js";

/** How long Stop waits for the last final and the saved job. */
const FINISH_TIMEOUT_MS = 60000;

let socket = null;
let mic = null;
let opened = false; // the door accepted the session (session.created came)
let finishing = null; // {resolve} while Stop waits for session.finished
let startedAt = 0;
let timer = null;
let early = []; // audio heard before the door opened, sent right after session.update

function doorUrl() {
  const url = new URL("/v1/realtime", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("intent", "transcription");
  url.searchParams.set("save", "true");
  return url.href;
}

function say(text, { error = false } = {}) {
  const element = $(error ? "live-error" : "live-status");
  element.textContent = text || "";
  element.hidden = !text;
}

function base64(samples) {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function send(event) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(event));
  else if (event.type === "input_audio_buffer.append" && state.recording === "starting") early.push(event);
}

/** Why the door closed on us: a refused key (asked again through a cheap call), or else. */
async function explainRefusal() {
  try {
    await api.getJson("/v1/models");
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 401) return t("liveKeyWrong");
    return describe(error);
  }
  return t("liveRefused");
}

function onEvent(event) {
  const id = event.item_id;
  switch (event.type) {
    case "session.created":
    case "transcription_session.created":
      opened = true;
      break;
    case "input_audio_buffer.speech_started":
      liveTurn(id);
      break;
    case "conversation.item.input_audio_transcription.delta":
      liveTurn(id, { delta: event.delta || "" });
      break;
    case "conversation.item.input_audio_transcription.completed":
      liveTurn(id, { final: event.transcript || "" });
      break;
    case "conversation.item.input_audio_transcription.failed":
      liveTurn(id, { final: "" });
      say(describe(event.error), { error: true });
      break;
    case "session.finished":
      finishing?.resolve(event.job || null);
      break;
    case "error": {
      const code = event.error?.code;
      say(code === "invalid_api_key" ? t("liveKeyWrong") : describe(event.error), { error: true });
      break;
    }
    default:
      break;
  }
}

function connect() {
  const key = api.getKey();
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(doorUrl(), protocols);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => {}; // the close that follows says more
    ws.onclose = async () => {
      const wasOpen = socket === ws;
      socket = null;
      if (!wasOpen) reject(new Error("refused"));
      finishing?.resolve(null);
      if (state.recording === "recording" || state.recording === "starting") {
        say(opened ? t("liveLost") : await explainRefusal(), { error: true });
        await halt();
      }
    };
    ws.onmessage = (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch {
        // not JSON: ignored, as OpenAI's clients do
      }
    };
  });
}

async function halt() {
  clearInterval(timer);
  const running = mic;
  mic = null;
  await running?.stop();
  if (state.recording !== "idle") setRecording("idle");
}

async function start() {
  const why = unavailable();
  if (why) {
    say(t(why === "insecure" ? "micInsecure" : "micUnsupported"), { error: true });
    return;
  }
  closeView();
  say("");
  say("", { error: true });
  opened = false;
  early = [];
  setRecording("starting");
  try {
    mic = await startMic((samples) => send({ type: "input_audio_buffer.append", audio: base64(samples) }));
  } catch (error) {
    say(t(`mic_${reason(error)}`), { error: true });
    await halt();
    return;
  }
  try {
    socket = await connect();
  } catch {
    say(await explainRefusal(), { error: true });
    await halt();
    return;
  }
  send({
    type: "session.update",
    session: {
      type: "transcription",
      audio: { input: { format: { type: "audio/pcm", rate: RATE }, turn_detection: { type: "server_vad" } } },
    },
  });
  for (const event of early.splice(0)) send(event);
  startedAt = Date.now();
  timer = setInterval(renderLive, 500);
  setRecording("recording");
}

async function stop() {
  setRecording("saving");
  clearInterval(timer);
  await mic?.stop(); // its last samples are sent before the finish
  mic = null;
  const saved = new Promise((resolve) => {
    finishing = { resolve };
    setTimeout(() => resolve(null), FINISH_TIMEOUT_MS);
  });
  send({ type: "session.finish" });
  const job = await saved;
  finishing = null;
  socket?.close(1000);
  setRecording("idle");
  if (!job) {
    say(t("liveNotSaved"), { error: true });
    return;
  }
  putJob(job, { first: true });
  ensureStreams();
  $("live").hidden = true;
  openView(job.id);
}

export function renderLive() {
  const status = state.recording;
  const button = $("record");
  button.textContent = t(status === "recording" ? "stop" : "record");
  button.classList.toggle("recording", status === "recording");
  button.disabled = status === "starting" || status === "saving";
  if (status !== "idle") $("live").hidden = false;
  const seconds = status === "recording" ? (Date.now() - startedAt) / 1000 : null;
  $("live-clock").textContent = seconds === null ? "" : clock(seconds);
  if (status === "starting") say(t("liveStarting"));
  else if (status === "recording") say(state.turns.length ? "" : t("liveListening"));
  else if (status === "saving") say(t("liveSaving"));
  const text = $("live-text");
  text.replaceChildren(
    ...state.turns
      .filter((turn) => turn.text.trim())
      .map((turn) => {
        const span = document.createElement("span");
        span.className = turn.final ? "final" : "interim";
        span.textContent = `${turn.text.trim()} `;
        return span;
      }),
  );
}

/** The Record/Stop button and the live panel. */
export function wireLive() {
  subscribe("live", renderLive);
  $("record").addEventListener("click", () => (state.recording === "recording" ? stop() : start()));
  $("live-close").addEventListener("click", () => {
    if (state.recording === "idle") $("live").hidden = true;
  });
  if (unavailable() === "insecure") {
    $("record-note").textContent = t("micInsecure");
    $("record-note").hidden = false;
  }
}
