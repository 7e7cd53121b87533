// A client of this server's live door: OpenAI's Realtime transcription over a WebSocket
// (/v1/realtime?intent=transcription), with the key as the `openai-insecure-api-key.<key>`
// subprotocol (a browser cannot set headers), plus this server's two extensions: `save=true`
// keeps the session as a job, and the client event `session.finish` ends the audio — the
// server commits the last turn, sends its final and answers `session.finished` with the job.
// Knows nothing of the page: live.js gives it the callbacks and shows what they say.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { describe } from "./ui.js";

/** Base64 of PCM16 samples, as input_audio_buffer.append carries them. */
function base64(samples) {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function doorUrl(save) {
  const url = new URL("/v1/realtime", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("intent", "transcription");
  if (save) url.searchParams.set("save", "true");
  return url.href;
}

/** Why the door closed a session it never started: a refused key (the page's cheap call asks
 * again, which also opens the key dialog), the server's own error, or a refusal. */
export async function explainRefusal() {
  try {
    await api.getJson("/v1/models");
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 401) return t("liveKeyWrong");
    return describe(error);
  }
  return t("liveRefused");
}

export class LiveDoor {
  /** `onEvent(event)` gets every server event; `onClose(started)` when the socket closes
   * (`started`: the server had accepted the session). */
  constructor({ onEvent, onClose }) {
    this.onEvent = onEvent;
    this.onClose = onClose;
    this.socket = null;
    this.started = false; // session.created came
    this.waiting = []; // appends made before the door opened
    this.finished = null; // resolve() of finish()'s promise
  }

  /** Open the session (24 kHz PCM16 at `rate`, server VAD); resolves once it is open. */
  open({ rate, save }) {
    const key = api.getKey();
    const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(doorUrl(save), protocols);
      ws.onopen = () => {
        this.socket = ws;
        const input = { format: { type: "audio/pcm", rate }, turn_detection: { type: "server_vad" } };
        this.send({ type: "session.update", session: { type: "transcription", audio: { input } } });
        for (const event of this.waiting.splice(0)) this.send(event);
        resolve();
      };
      ws.onerror = () => {}; // the close that follows says more
      ws.onclose = () => {
        const wasOpen = this.socket === ws;
        this.socket = null;
        this.finished?.(null);
        if (wasOpen) this.onClose(this.started);
        else reject(new Error("refused"));
      };
      ws.onmessage = (message) => {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return; // not JSON: ignored, as OpenAI's clients do
        }
        if (event.type === "session.created" || event.type === "transcription_session.created") {
          this.started = true;
        }
        if (event.type === "session.finished") this.finished?.(event);
        this.onEvent(event);
      };
    });
  }

  send(event) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }

  /** 24 kHz PCM16 samples; kept until the door is open. */
  append(samples) {
    const event = { type: "input_audio_buffer.append", audio: base64(samples) };
    if (this.socket) this.send(event);
    else this.waiting.push(event);
  }

  /** End the audio; resolves with session.finished ({job, error}), or null (closed, timeout). */
  finish(timeoutMs) {
    const done = new Promise((resolve) => {
      this.finished = resolve;
      setTimeout(() => resolve(null), timeoutMs);
    });
    this.send({ type: "session.finish" });
    return done.finally(() => {
      this.finished = null;
      this.close();
    });
  }

  close() {
    const ws = this.socket;
    this.socket = null;
    ws?.close(1000);
  }
}
