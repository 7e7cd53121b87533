// Record: the microphone (mic.js) streams to the server's live door (realtime.js), the text
// appears as it is spoken — interim words greyed, each turn's final in normal text (the turns
// live in state.js) — and Stop keeps the recording as a job (the door's `save=true`) that
// opens like an uploaded file. Every way it can fail is said in words: no secure context, the
// microphone denied, missing or busy, the key refused, the server refusing or going away.

import { t } from "./i18n.js";
import { ensureStreams } from "./jobs.js";
import { RATE, reason, startMic, unavailable } from "./mic.js";
import { LiveDoor, explainRefusal } from "./realtime.js";
import { liveTurn, putJob, setRecording, state, subscribe } from "./state.js";
import { $, clock, describe } from "./ui.js";
import { closeView, openView } from "./view.js";

/** How long Stop waits for the last final and the saved job. */
const FINISH_TIMEOUT_MS = 60000;

let door = null;
let mic = null;
let startedAt = 0;
let timer = null;

function say(text, { error = false } = {}) {
  const element = $(error ? "live-error" : "live-status");
  element.textContent = text || "";
  element.hidden = !text;
}

function onEvent(event) {
  const id = event.item_id;
  switch (event.type) {
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
    case "error":
      say(event.error?.code === "invalid_api_key" ? t("liveKeyWrong") : describe(event.error), { error: true });
      break;
    default:
      break;
  }
}

/** The socket closed while recording: the server went away, or never took the session. */
async function onClose(started) {
  if (state.recording !== "recording" && state.recording !== "starting") return;
  await halt();
  say(started ? t("liveLost") : await explainRefusal(), { error: true });
}

async function halt() {
  clearInterval(timer);
  const running = mic;
  mic = null;
  await running?.stop();
  door?.close();
  door = null;
  if (state.recording !== "idle") setRecording("idle");
}

async function start() {
  const why = unavailable();
  if (why) {
    say(t(why === "insecure" ? "micInsecure" : "micUnsupported"), { error: true });
    $("live").hidden = false;
    return;
  }
  closeView();
  say("");
  say("", { error: true });
  setRecording("starting");
  door = new LiveDoor({ onEvent, onClose });
  const current = door;
  try {
    mic = await startMic((samples) => current.append(samples));
  } catch (error) {
    await halt();
    say(t(`mic_${reason(error)}`), { error: true });
    return;
  }
  try {
    await current.open({ rate: RATE, save: true });
  } catch {
    const why = await explainRefusal();
    await halt();
    say(why, { error: true });
    return;
  }
  startedAt = Date.now();
  timer = setInterval(renderLive, 500);
  setRecording("recording");
}

async function stop() {
  setRecording("saving");
  clearInterval(timer);
  await mic?.stop(); // its last samples go before the finish
  mic = null;
  const finished = door ? await door.finish(FINISH_TIMEOUT_MS) : null; // null: it closed meanwhile
  door = null;
  setRecording("idle");
  const job = finished?.job;
  if (!job) {
    say(finished?.error ? describe(finished.error) : t("liveNotSaved"), { error: true });
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
  $("live-stop").hidden = status !== "recording"; // beside the text: on a phone it comes first
  $("live-close").hidden = status !== "idle";
  $("live-clock").textContent = status === "recording" ? clock((Date.now() - startedAt) / 1000) : "";
  if (status === "starting") say(t("liveStarting"));
  else if (status === "recording") say(state.turns.some((turn) => turn.text.trim()) ? "" : t("liveListening"));
  else if (status === "saving") say(t("liveSaving"));
  else say("");
  $("live-text").replaceChildren(
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

/** The Record/Stop buttons and the live panel. */
export function wireLive() {
  subscribe("live", renderLive);
  $("record").addEventListener("click", () => (state.recording === "recording" ? stop() : start()));
  $("live-stop").addEventListener("click", () => state.recording === "recording" && stop());
  $("live-close").addEventListener("click", () => ($("live").hidden = true));
  if (unavailable() === "insecure") {
    $("record-note").textContent = t("micInsecure");
    $("record-note").hidden = false;
  }
}
