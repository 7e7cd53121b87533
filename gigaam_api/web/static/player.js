// The player's source: the link to the open job's audio, renewed before it expires.
//
// The player fetches the recording itself, with Range requests, so playback starts at once and
// seeking works on long files. It cannot send the key, so it plays a link the server hands out:
// with API_KEY set that link is signed and expires after `expires_in` seconds. It is renewed
// before then (swapped in while the player is paused, so playback is never cut), and once more
// when the player fails, which is what an expired link looks like after a tab slept.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { state } from "./state.js";
import { $, describe } from "./ui.js";

const RENEW_AT = 0.9; // of a link's lifetime
const RETRY_GAP_MS = 30000; // a player failing again sooner has another problem than its link

function noLink() {
  return { id: null, signed: false, retriedAt: -Infinity, pending: null, timer: null };
}

let link = noLink(); // the job whose link plays, whether it expires, the next one waiting

function resetAudio() {
  clearTimeout(link.timer);
  link = noLink();
}

/** Stop playing and forget the link (the view closed). */
export function stopAudio() {
  resetAudio();
  $("player").removeAttribute("src");
  $("player").load();
}

// The note under the player, unless the person has opened another job meanwhile.
function showAudioNote(id, text) {
  if (state.openId !== id) return;
  const note = $("player-note");
  note.textContent = text;
  note.hidden = false;
}

function audioTrouble(error) {
  return error instanceof api.ApiError && error.status === 404 ? t("audioMissing") : describe(error);
}

/** Remember a fresh link and when to ask for the next one. */
function keepLink(id, fresh) {
  clearTimeout(link.timer);
  link.id = id;
  link.signed = Number.isFinite(fresh.expires_in) && fresh.expires_in > 0;
  if (link.signed) {
    const delay = Math.max(1, fresh.expires_in * RENEW_AT) * 1000;
    link.timer = setTimeout(() => renewLink(id), delay);
  }
}

/** Play from `fresh`; with `keepPlace`, at the same time and in the same play/pause state. */
function useLink(fresh, keepPlace) {
  const player = $("player");
  link.pending = null;
  if (keepPlace) {
    const position = player.currentTime;
    const playing = !player.paused;
    player.addEventListener(
      "loadedmetadata",
      () => {
        player.currentTime = position;
        if (playing) player.play().catch(() => {});
      },
      { once: true },
    );
  }
  player.src = fresh.url;
}

/** Load the audio of job `id` (just opened, or its audio just went away). */
export async function setupAudio(id) {
  const player = $("player");
  $("player-note").hidden = true;
  resetAudio();
  if (player.getAttribute("src")) {
    player.removeAttribute("src"); // not the previous recording while this one's link comes
    player.load();
  }
  let fresh;
  try {
    fresh = await api.audioLink(id);
  } catch (error) {
    showAudioNote(id, audioTrouble(error));
    return;
  }
  if (state.openId !== id) return;
  keepLink(id, fresh);
  useLink(fresh, false);
}

async function renewLink(id) {
  let fresh;
  try {
    fresh = await api.audioLink(id);
  } catch {
    return; // the player's error handler asks again if the old link runs out
  }
  if (state.openId !== id || link.id !== id) return;
  keepLink(id, fresh);
  const player = $("player");
  if (player.error) return; // nothing plays; a new src would only fail again
  if (player.paused) useLink(fresh, true);
  else link.pending = fresh; // swapped in at the next pause
}

function onPlayerPause() {
  if (link.pending && state.openId === link.id) useLink(link.pending, true);
}

async function onPlayerError() {
  const id = state.openId;
  const player = $("player");
  if (!id || !player.getAttribute("src")) return;
  const sinceRetry = performance.now() - link.retriedAt;
  if (link.signed && link.id === id && sinceRetry > RETRY_GAP_MS) {
    // most likely the link expired (the tab slept through its renewal): once more, fresh
    link.retriedAt = performance.now();
    try {
      const fresh = await api.audioLink(id);
      if (state.openId !== id) return;
      keepLink(id, fresh);
      useLink(fresh, true);
      return;
    } catch (error) {
      showAudioNote(id, audioTrouble(error));
      return;
    }
  }
  // tell "cannot decode" apart from "cannot fetch"
  try {
    await api.request(`/v1/jobs/${encodeURIComponent(id)}/audio`, { headers: { Range: "bytes=0-0" } });
  } catch (error) {
    showAudioNote(id, audioTrouble(error));
    return;
  }
  showAudioNote(id, t("audioUnsupported"));
}

export function wirePlayer() {
  const player = $("player");
  player.addEventListener("error", onPlayerError);
  player.addEventListener("pause", onPlayerPause);
}
