// The page: uploads become jobs, the list follows them, the view shows one job's transcript
// with its audio. Server and user data reach the DOM only through textContent/attributes.
//
// This module starts the page: it wires each part (each in its own module, sharing state only
// through state.js), then checks the key, loads the list and keeps it fresh.

import * as api from "./api.js";
import { labelDownloads, wireDownloads } from "./downloads.js";
import { apply, language, setLanguage, t } from "./i18n.js";
import { loadJobs, renderJobs, wireJobs } from "./jobs.js";
import { keyAccepted, wireKey } from "./key.js";
import { renderLive, wireLive } from "./live.js";
import { wirePlayer } from "./player.js";
import { renderSpeakers, wireSpeakers } from "./speakers.js";
import { TERMINAL, setOffline, setSpeechLanguages, state } from "./state.js";
import { applySearch, renameShown, wireTranscript } from "./transcript.js";
import { $, notify, wireNotices } from "./ui.js";
import { renderLanguages, renderUploads, wireUploads } from "./upload.js";
import { openView, renderViewHead, wireView } from "./view.js";

const POLL_MS = 3000;

let started = false; // the poll runs (once the first check passed)

/** Everything that shows words, in the language now chosen. */
function rerender() {
  apply();
  $("lang").value = language();
  labelDownloads();
  renderUploads();
  renderLanguages();
  renderJobs();
  renderLive();
  if (state.openId) {
    renderViewHead();
    renderSpeakers();
    renameShown();
    applySearch();
  }
  if (state.jobApi === false) notify(t("noJobApi"));
}

/** Check the key with a cheap call (which also says the model's languages), then load the
 * list; a 401 opens the key dialog. */
async function boot() {
  try {
    const models = await api.getJson("/v1/models");
    setSpeechLanguages(models?.data?.[0]?.languages);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 0) {
      setOffline(true);
      setTimeout(boot, POLL_MS);
    }
    return;
  }
  keyAccepted();
  setOffline(false);
  await loadJobs();
  const wanted = decodeURIComponent((location.hash.match(/^#job=(.+)$/) || [])[1] || "");
  if (wanted && state.jobs.has(wanted) && !state.openId) openView(wanted);
  if (!started) {
    started = true;
    setInterval(() => {
      if (state.jobApi === false || document.hidden) return;
      const busy = state.order.some((id) => !TERMINAL.has(state.jobs.get(id)?.status));
      if (busy || state.offline) loadJobs();
    }, POLL_MS);
  }
}

wireNotices();
wireKey(boot);
wireJobs(openView);
wireUploads();
wireView();
wireTranscript();
wireSpeakers();
wirePlayer();
wireDownloads();
wireLive();
$("lang").addEventListener("change", (event) => {
  setLanguage(event.target.value);
  rerender();
});
rerender();
document.body.dataset.ready = "true";
boot();
