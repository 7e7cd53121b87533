// The page: uploads become jobs, the list follows them, the view shows one job's transcript
// with its audio. Server and user data reach the DOM only through textContent/attributes.

import * as api from "./api.js";
import { apply, language, setLanguage, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const MAX_STREAMS = 3; // browsers allow ~6 connections per server; keep some for everything else
const POLL_MS = 3000;
const PAGE = 50;

const state = {
  jobs: new Map(), // id -> job object as the server sent it (progress updated from events)
  order: [], // job ids, newest first
  hasMore: false,
  uploads: [], // {localId, file, progress, status: waiting|uploading|failed, error}
  streams: new Map(), // job id -> AbortController of its event stream
  segments: new Map(), // job id -> [{start, end, text, words: [{text, start, end}]}]
  openId: null,
  resultLoaded: false, // the open job's transcript came from /result (final), not from events
  jobApi: null, // null until known; false when the server has no /v1/jobs
  started: false,
  offline: false,
  keyJustEntered: false,
  audio: { id: null, signed: false, retriedAt: -Infinity, pending: null, timer: null },
  words: [], // [{start, end, el}] of the open transcript, in time order
  currentWord: -1,
  rowEls: new Map(),
};

// -- formatting ---------------------------------------------------------------------------

function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function baseName(name) {
  const cleaned = String(name || "transcript").replace(/[\\/:*?"<>|]+/g, "_");
  const dot = cleaned.lastIndexOf(".");
  return dot > 0 ? cleaned.slice(0, dot) : cleaned;
}

/** A sentence a person understands, for an ApiError or a job's error object. */
function describe(error) {
  if (!error) return "";
  const code = error.code || "";
  const status = error.status ?? 0;
  if (status === 0 || code === "network") return t("err_network");
  if (status === 401 || code === "invalid_api_key") return t("err_auth");
  if (["unsupported_audio", "no_audio_stream", "invalid_audio", "corrupt_audio"].includes(code)) {
    return t("err_not_audio");
  }
  if (code === "empty_audio") return t("err_empty");
  if (code === "audio_too_long") return t("err_too_long");
  if (status === 413 || code === "request_too_large") return t("err_too_big");
  if (status === 507 || code === "insufficient_storage") return t("err_storage");
  if (code === "model_not_loaded") return t("err_starting");
  if (code === "jobs_unavailable") return t("err_jobs_unavailable");
  if (code === "shutting_down" || status === 502 || status === 504) return t("err_restarting");
  if (status === 503 || status === 429 || code === "server_busy" || code === "too_many_jobs") {
    return error.retryAfter ? t("err_busy", { s: error.retryAfter }) : t("err_busy_now");
  }
  if (status === 404 || code === "job_not_found") return t("err_not_found");
  if (code === "cancelled") return t("err_cancelled");
  return t("err_other", { msg: error.message || `HTTP ${status}` });
}

function notify(text) {
  const notice = $("notice");
  notice.textContent = text || "";
  notice.hidden = !text;
}

function setOffline(offline) {
  if (offline === state.offline) return;
  state.offline = offline;
  notify(offline ? t("offline") : t("backOnline"));
  if (!offline) setTimeout(() => !state.offline && $("notice").textContent === t("backOnline") && notify(""), 4000);
}

// -- the API key --------------------------------------------------------------------------

function askKey() {
  const dialog = $("key-dialog");
  const error = $("key-error");
  const key = api.getKey();
  if (key) {
    error.textContent = state.keyJustEntered ? t("keyWrong") : t("keySavedWrong");
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  $("key-forget").hidden = !key;
  if (!dialog.open) {
    $("key-input").value = "";
    dialog.showModal();
  }
  $("key-input").focus();
}

api.onUnauthorized(() => askKey());

async function saveKey(event) {
  event.preventDefault();
  const value = $("key-input").value.trim();
  if (!value) return;
  api.setKey(value);
  state.keyJustEntered = true;
  $("key-dialog").close();
  await boot();
}

// -- loading the list ---------------------------------------------------------------------

function mergeJob(job) {
  if (!job || !job.id) return;
  const known = state.jobs.get(job.id);
  // a stream may be ahead of a list snapshot taken a moment earlier
  if (known && !TERMINAL.has(job.status) && known.status === job.status) {
    job = { ...job, progress: Math.max(job.progress ?? 0, known.progress ?? 0) };
  }
  state.jobs.set(job.id, { ...known, ...job });
}

async function loadJobs({ more = false } = {}) {
  const after = more && state.order.length ? `&after=${encodeURIComponent(state.order.at(-1))}` : "";
  let page;
  try {
    page = await api.getJson(`/v1/jobs?limit=${PAGE}${after}`);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404 && !error.code) {
      state.jobApi = false;
      notify(t("noJobApi"));
      return;
    }
    if (error instanceof api.ApiError && error.status === 0) setOffline(true);
    else if (error instanceof api.ApiError && error.status !== 401) notify(t("loadFailed", { msg: describe(error) }));
    return;
  }
  setOffline(false);
  state.jobApi = true;
  const ids = [];
  for (const job of page.data || []) {
    mergeJob(job);
    ids.push(job.id);
  }
  if (more) {
    state.order.push(...ids.filter((id) => !state.order.includes(id)));
  } else {
    // first page replaces the head of the list; jobs deleted elsewhere disappear
    const tail = state.order.slice(PAGE).filter((id) => !ids.includes(id));
    for (const id of state.order) if (!ids.includes(id) && !tail.includes(id)) state.jobs.delete(id);
    state.order = [...ids, ...tail];
    state.hasMore = Boolean(page.has_more) || state.hasMore;
  }
  if (more) state.hasMore = Boolean(page.has_more);
  renderJobs();
  ensureStreams();
  if (state.openId && state.jobs.has(state.openId)) renderViewHead();
  if (state.openId && !state.jobs.has(state.openId)) closeView();
}

async function refreshJob(id) {
  try {
    mergeJob(await api.getJson(`/v1/jobs/${encodeURIComponent(id)}`));
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404) {
      forget(id);
      return;
    }
  }
  renderJobs();
  if (state.openId === id) renderViewHead();
}

function forget(id) {
  state.streams.get(id)?.abort();
  state.streams.delete(id);
  state.jobs.delete(id);
  state.segments.delete(id);
  state.order = state.order.filter((other) => other !== id);
  if (state.openId === id) closeView();
  renderJobs();
}

// -- live progress: one event stream per unfinished job (a few at a time) ------------------

function ensureStreams() {
  const unfinished = state.order.filter((id) => !TERMINAL.has(state.jobs.get(id)?.status));
  const byPriority = [
    ...unfinished.filter((id) => id === state.openId),
    ...unfinished.filter((id) => state.jobs.get(id)?.status === "running"),
    ...unfinished.slice().reverse(), // oldest queued first: it starts next
  ];
  const open = state.openId;
  if (open && unfinished.includes(open) && !state.streams.has(open) && state.streams.size >= MAX_STREAMS) {
    // the opened job's live text matters more than another row's progress bar
    const [victim, controller] = state.streams.entries().next().value;
    controller.abort();
    state.streams.delete(victim);
  }
  for (const id of byPriority) {
    if (state.streams.size >= MAX_STREAMS) break;
    if (!state.streams.has(id)) follow(id);
  }
}

function follow(id) {
  const controller = new AbortController();
  state.streams.set(id, controller);
  state.segments.set(id, []); // a new stream replays every segment from the first
  if (state.openId === id && !state.resultLoaded) renderTranscript([]);
  api
    .followEvents(id, {
      signal: controller.signal,
      onEvent: (name, data) => onJobEvent(id, name, data),
      onState: (s) => setOffline(s === "offline"),
    })
    .catch(() => null)
    .then((ended) => {
      if (state.streams.get(id) === controller) state.streams.delete(id);
      if (controller.signal.aborted) return;
      // Finished, or the stream was refused (job gone, key wrong): look at the job itself.
      // A job still unfinished is followed again by the next poll, not at once, so a
      // refusing server is not asked in a tight loop.
      refreshJob(id).then(() => ended && ensureStreams());
    });
}

function normalizeSegment(raw) {
  const s = raw && typeof raw.segment === "object" && raw.segment ? raw.segment : raw || {};
  const words = (Array.isArray(s.words) ? s.words : [])
    .map((w) => ({ text: String(w.word ?? w.text ?? "").trim(), start: Number(w.start) || 0, end: Number(w.end) || 0 }))
    .filter((w) => w.text);
  return { start: Number(s.start) || 0, end: Number(s.end) || 0, text: String(s.text ?? "").trim(), words };
}

function onJobEvent(id, name, data) {
  const job = state.jobs.get(id);
  if (!job) return;
  const payload = data && typeof data.job === "object" && data.job ? data.job : data || {};
  if (name === "job.progress") {
    if (payload.status) job.status = payload.status;
    else if (job.status === "queued") job.status = "running";
    if (Number.isFinite(payload.progress)) job.progress = payload.progress;
    if (Number.isFinite(payload.processed_seconds)) job.processed_seconds = payload.processed_seconds;
    if (Number.isFinite(payload.duration)) job.duration = payload.duration;
  } else if (name === "job.segment") {
    const segment = normalizeSegment(data);
    const list = state.segments.get(id) || [];
    if (!list.some((other) => other.start === segment.start && other.text === segment.text)) {
      list.push(segment);
      state.segments.set(id, list);
      if (job.status === "queued") job.status = "running";
      if (state.openId === id && !state.resultLoaded) appendSegment(segment);
    }
  } else if (name.startsWith("job.")) {
    const final = name.slice(4);
    if (TERMINAL.has(final)) {
      job.status = final;
      if (final === "completed") job.progress = 1;
      if (payload.error) job.error = payload.error;
    }
  }
  updateRow(id);
  if (state.openId === id) {
    renderViewHead();
    if (job.status === "completed" && name === "job.completed") loadResult(id);
  }
}

// -- the list -----------------------------------------------------------------------------

function statusText(job) {
  if (job.status === "running") {
    const pct = Math.round((job.progress || 0) * 100);
    return `${t("status_running")} ${pct}%`;
  }
  return t(`status_${job.status}`) || job.status;
}

function makeRow(id) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = id;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "job-open";
  const name = document.createElement("span");
  name.className = "job-name";
  const meta = document.createElement("span");
  meta.className = "job-meta";
  open.append(name, meta);
  open.addEventListener("click", () => openView(id));
  const bar = document.createElement("progress");
  bar.className = "job-progress";
  bar.max = 1;
  const error = document.createElement("p");
  error.className = "error job-error";
  error.hidden = true;
  li.append(open, bar, error);
  return li;
}

function updateRow(id) {
  const job = state.jobs.get(id);
  const li = state.rowEls.get(id);
  if (!job || !li) return;
  li.querySelector(".job-name").textContent = job.filename || id;
  const parts = [];
  if (Number.isFinite(job.duration)) parts.push(clock(job.duration));
  parts.push(statusText(job));
  li.querySelector(".job-meta").textContent = parts.join(" · ");
  li.dataset.status = job.status;
  const bar = li.querySelector(".job-progress");
  bar.value = job.status === "completed" ? 1 : Math.min(1, Math.max(0, job.progress || 0));
  bar.setAttribute("aria-label", `${t("progress")}: ${job.filename || id}`);
  bar.hidden = TERMINAL.has(job.status) && job.status !== "completed";
  const error = li.querySelector(".job-error");
  error.textContent = job.status === "failed" ? describe(job.error) : "";
  error.hidden = job.status !== "failed";
  const button = li.querySelector(".job-open");
  if (state.openId === id) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
}

function renderJobs() {
  const list = $("jobs");
  for (const [id, li] of state.rowEls) {
    if (!state.jobs.has(id)) {
      li.remove();
      state.rowEls.delete(id);
    }
  }
  state.order.forEach((id, index) => {
    let li = state.rowEls.get(id);
    if (!li) {
      li = makeRow(id);
      state.rowEls.set(id, li);
    }
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    updateRow(id);
  });
  $("jobs-empty").hidden = state.order.length > 0 || state.uploads.length > 0;
  $("more").hidden = !state.hasMore;
}

// -- uploads ------------------------------------------------------------------------------

let uploadSeq = 0;

function addFiles(files) {
  if (state.jobApi === false) {
    notify(t("noJobApi"));
    return;
  }
  for (const file of files) {
    state.uploads.push({ localId: ++uploadSeq, file, progress: 0, status: "waiting", error: null });
  }
  renderUploads();
  pumpUploads();
}

function pumpUploads() {
  if (state.uploads.some((u) => u.status === "uploading")) return;
  const next = state.uploads.find((u) => u.status === "waiting");
  if (!next) return;
  next.status = "uploading";
  renderUploads();
  const handle = api.uploadJob(next.file, (fraction) => {
    next.progress = fraction;
    renderUploads();
  });
  handle.promise
    .then((job) => {
      state.uploads = state.uploads.filter((u) => u !== next);
      mergeJob(job);
      if (!state.order.includes(job.id)) state.order.unshift(job.id);
      renderUploads();
      renderJobs();
      ensureStreams();
    })
    .catch((error) => {
      next.status = "failed";
      next.error = error;
      renderUploads();
    })
    .finally(() => pumpUploads());
}

function renderUploads() {
  const list = $("uploads");
  list.replaceChildren();
  for (const upload of state.uploads) {
    const li = document.createElement("li");
    li.className = "job upload";
    li.dataset.status = upload.status;
    const name = document.createElement("span");
    name.className = "job-name";
    name.textContent = upload.file.name;
    const meta = document.createElement("span");
    meta.className = "job-meta";
    meta.textContent =
      upload.status === "failed"
        ? t("status_upload_failed")
        : t("status_uploading", { p: Math.round(upload.progress * 100) });
    li.append(name, meta);
    if (upload.status === "failed") {
      const error = document.createElement("p");
      error.className = "error upload-error";
      error.setAttribute("role", "alert");
      error.textContent = describe(upload.error);
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "secondary";
      retry.textContent = t("retry");
      retry.setAttribute("aria-label", `${t("retry")}: ${upload.file.name}`);
      retry.addEventListener("click", () => {
        upload.status = "waiting";
        upload.error = null;
        renderUploads();
        pumpUploads();
      });
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "secondary";
      dismiss.textContent = t("dismiss");
      dismiss.setAttribute("aria-label", `${t("dismiss")}: ${upload.file.name}`);
      dismiss.addEventListener("click", () => {
        state.uploads = state.uploads.filter((u) => u !== upload);
        renderUploads();
        renderJobs();
      });
      const buttons = document.createElement("div");
      buttons.className = "row-buttons";
      buttons.append(retry, dismiss);
      li.append(error, buttons);
    } else {
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = upload.progress;
      bar.setAttribute("aria-label", `${t("status_uploading", { p: "" }).replace(/\s*%$/, "")}: ${upload.file.name}`);
      li.append(bar);
    }
    list.append(li);
  }
  $("jobs-empty").hidden = state.order.length > 0 || state.uploads.length > 0;
}

// -- the job view -------------------------------------------------------------------------

function openView(id) {
  const job = state.jobs.get(id);
  if (!job) return;
  state.openId = id;
  state.resultLoaded = false;
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  $("view").hidden = false;
  $("search").value = "";
  $("search-count").textContent = "";
  renderJobs();
  renderViewHead();
  renderTranscript(state.segments.get(id) || []);
  setupAudio(id);
  if (job.status === "completed") loadResult(id);
  else ensureStreams();
  $("view-title").focus(); // moves keyboard users (and phone screens) to the opened job
}

function closeView() {
  state.openId = null;
  $("view").hidden = true;
  resetAudio();
  $("player").removeAttribute("src");
  $("player").load();
  history.replaceState(null, "", location.pathname);
  renderJobs();
}

function renderViewHead() {
  const job = state.jobs.get(state.openId);
  if (!job) return;
  $("view-title").textContent = job.filename || job.id;
  const parts = [statusText(job)];
  if (job.status === "running" && Number.isFinite(job.duration)) {
    parts.push(t("progressOf", { done: clock(job.processed_seconds || 0), total: clock(job.duration) }));
  } else if (Number.isFinite(job.duration)) {
    parts.push(clock(job.duration));
  }
  $("view-status").textContent = parts.join(" · ");
  const bar = $("view-progress");
  bar.value = job.status === "completed" ? 1 : job.progress || 0;
  bar.hidden = TERMINAL.has(job.status) && job.status !== "completed";
  const error = $("view-error");
  error.textContent = job.status === "failed" ? describe(job.error) : "";
  error.hidden = job.status !== "failed";
  const done = job.status === "completed";
  for (const button of document.querySelectorAll(".dl")) button.disabled = !done;
  $("copy").disabled = !(done || (state.segments.get(job.id) || []).length);
  $("cancel").hidden = TERMINAL.has(job.status);
  const empty = $("transcript-empty");
  const hasText = $("transcript").childElementCount > 0;
  empty.hidden = hasText || job.status === "failed" || job.status === "cancelled";
  empty.textContent = done ? t("emptyText") : t("waitingText");
}

async function loadResult(id) {
  let body;
  try {
    body = await api.getJson(
      `/v1/jobs/${encodeURIComponent(id)}/result?response_format=verbose_json` +
        "&timestamp_granularities[]=word&timestamp_granularities[]=segment",
    );
  } catch (error) {
    if (state.openId === id) notify(describe(error));
    return;
  }
  if (state.openId !== id) return;
  const segments = (body.segments || []).map((s) => normalizeSegment(s));
  let index = 0;
  for (const raw of body.words || []) {
    const word = normalizeSegment({ words: [raw] }).words[0];
    if (!word || !segments.length) continue;
    while (index < segments.length - 1 && word.start >= segments[index].end - 0.0005 && word.start >= segments[index + 1].start - 0.0005) index++;
    segments[index].words.push(word);
  }
  state.segments.set(id, segments);
  state.resultLoaded = true;
  renderTranscript(segments);
  renderViewHead();
}

function segmentElement(segment) {
  const wrap = document.createElement("div");
  wrap.className = "seg";
  const time = document.createElement("button");
  time.type = "button";
  time.className = "seg-time";
  time.textContent = clock(segment.start);
  time.dataset.start = String(segment.start);
  time.addEventListener("click", () => seek(segment.start));
  const text = document.createElement("p");
  text.className = "seg-text";
  const words = segment.words.length ? segment.words : [{ text: segment.text, start: segment.start, end: segment.end }];
  words.forEach((word, i) => {
    if (i) text.append(" ");
    const span = document.createElement("span");
    span.className = "w";
    span.textContent = word.text;
    span.dataset.start = String(word.start);
    span.dataset.end = String(word.end);
    text.append(span);
    state.words.push({ start: word.start, end: word.end, el: span });
  });
  wrap.dataset.text = segment.text.toLowerCase();
  wrap.append(time, text);
  return wrap;
}

function renderTranscript(segments) {
  state.words = [];
  state.currentWord = -1;
  $("transcript").replaceChildren(...segments.map((s) => segmentElement(s)));
  applySearch();
  renderViewHead();
}

function appendSegment(segment) {
  $("transcript").append(segmentElement(segment));
  state.words.sort((a, b) => a.start - b.start);
  applySearch();
  renderViewHead();
}

// -- audio: play, follow the current word, seek -------------------------------------------

// The player fetches the recording itself, with Range requests, so playback starts at once and
// seeking works on long files. It cannot send the key, so it plays a link the server hands out:
// with API_KEY set that link is signed and expires after `expires_in` seconds. It is renewed
// before then (swapped in while the player is paused, so playback is never cut), and once more
// when the player fails, which is what an expired link looks like after a tab slept.

const RENEW_AT = 0.9; // of a link's lifetime
const RETRY_GAP_MS = 30000; // a player failing again sooner has another problem than its link

function resetAudio() {
  clearTimeout(state.audio.timer);
  state.audio = { id: null, signed: false, retriedAt: -Infinity, pending: null, timer: null };
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
function keepLink(id, link) {
  clearTimeout(state.audio.timer);
  state.audio.id = id;
  state.audio.signed = Number.isFinite(link.expires_in) && link.expires_in > 0;
  if (state.audio.signed) {
    const delay = Math.max(1, link.expires_in * RENEW_AT) * 1000;
    state.audio.timer = setTimeout(() => renewLink(id), delay);
  }
}

/** Play from `link`; with `keepPlace`, at the same time and in the same play/pause state. */
function useLink(link, keepPlace) {
  const player = $("player");
  state.audio.pending = null;
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
  player.src = link.url;
}

async function setupAudio(id) {
  const player = $("player");
  $("player-note").hidden = true;
  resetAudio();
  if (player.getAttribute("src")) {
    player.removeAttribute("src"); // not the previous recording while this one's link comes
    player.load();
  }
  let link;
  try {
    link = await api.audioLink(id);
  } catch (error) {
    showAudioNote(id, audioTrouble(error));
    return;
  }
  if (state.openId !== id) return;
  keepLink(id, link);
  useLink(link, false);
}

async function renewLink(id) {
  let link;
  try {
    link = await api.audioLink(id);
  } catch {
    return; // the player's error handler asks again if the old link runs out
  }
  if (state.openId !== id || state.audio.id !== id) return;
  keepLink(id, link);
  const player = $("player");
  if (player.error) return; // nothing plays; a new src would only fail again
  if (player.paused) useLink(link, true);
  else state.audio.pending = link; // swapped in at the next pause
}

function onPlayerPause() {
  if (state.audio.pending && state.openId === state.audio.id) useLink(state.audio.pending, true);
}

async function onPlayerError() {
  const id = state.openId;
  const player = $("player");
  if (!id || !player.getAttribute("src")) return;
  const sinceRetry = performance.now() - state.audio.retriedAt;
  if (state.audio.signed && state.audio.id === id && sinceRetry > RETRY_GAP_MS) {
    // most likely the link expired (the tab slept through its renewal): once more, fresh
    state.audio.retriedAt = performance.now();
    try {
      const link = await api.audioLink(id);
      if (state.openId !== id) return;
      keepLink(id, link);
      useLink(link, true);
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

function seek(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  highlight(seconds);
}

function wordAt(seconds) {
  let lo = 0;
  let hi = state.words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (state.words[mid].start <= seconds + 0.001) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

function highlight(seconds) {
  const index = wordAt(seconds);
  if (index === state.currentWord) return;
  state.words[state.currentWord]?.el.classList.remove("current");
  state.currentWord = index;
  const word = state.words[index];
  if (!word) return;
  word.el.classList.add("current");
  const box = $("transcript").getBoundingClientRect();
  const rect = word.el.getBoundingClientRect();
  if (rect.top < box.top || rect.bottom > box.bottom || rect.top < 0 || rect.bottom > innerHeight) {
    word.el.scrollIntoView({ block: "center", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  }
}

function tick() {
  const player = $("player");
  highlight(player.currentTime);
  if (!player.paused) requestAnimationFrame(tick);
}

// -- search -------------------------------------------------------------------------------

function applySearch() {
  const query = $("search").value.trim().toLowerCase();
  const only = $("filter").checked;
  const tokens = query.split(/\s+/).filter(Boolean);
  let count = 0;
  for (const seg of $("transcript").children) {
    const match = Boolean(query) && seg.dataset.text.includes(query);
    if (match) count++;
    seg.classList.toggle("match", match);
    seg.hidden = Boolean(query) && only && !match;
    for (const word of seg.querySelectorAll(".w")) {
      const text = word.textContent.toLowerCase();
      word.classList.toggle("hit", match && tokens.some((token) => text.includes(token)));
    }
  }
  $("search-count").textContent = query ? (count ? t("matches", { n: count }) : t("noMatches")) : "";
}

// -- downloads, copy, cancel, delete ------------------------------------------------------

const FORMATS = {
  txt: "response_format=text",
  srt: "response_format=srt",
  vtt: "response_format=vtt",
  json: "response_format=verbose_json&timestamp_granularities[]=word&timestamp_granularities[]=segment",
};

async function download(format) {
  const job = state.jobs.get(state.openId);
  if (!job) return;
  try {
    const response = await api.request(`/v1/jobs/${encodeURIComponent(job.id)}/result?${FORMATS[format]}`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `${baseName(job.filename)}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    notify(describe(error));
  }
}

async function copyText() {
  const job = state.jobs.get(state.openId);
  if (!job) return;
  let text = (state.segments.get(job.id) || []).map((s) => s.text).join(" ");
  if (job.status === "completed") {
    try {
      text = await (await api.request(`/v1/jobs/${encodeURIComponent(job.id)}/result?response_format=text`)).text();
    } catch {
      // keep the text assembled from the segments on screen
    }
  }
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch {
    ok = false;
  }
  if (!ok) {
    // plain http on a LAN is not a secure context: the old way still works there
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
  }
  notify(ok ? t("copied") : t("copyFailed"));
}

function confirmAction(text, yesLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yesLabel;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-no").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

async function removeJob(cancelling) {
  const job = state.jobs.get(state.openId);
  if (!job) return;
  const question = cancelling ? t("confirmCancel", { name: job.filename }) : t("confirmDelete", { name: job.filename });
  if (!(await confirmAction(question, cancelling ? t("cancel") : t("delete")))) return;
  try {
    await api.request(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof api.ApiError && error.status === 404)) {
      notify(describe(error));
      return;
    }
  }
  if (!cancelling) {
    forget(job.id);
    $("pick").focus();
    return;
  }
  // A cancelled job stays listed as cancelled (as the server keeps it until retention, and a
  // reload would show it); its text and audio are gone. One that finished first is gone.
  state.streams.get(job.id)?.abort();
  state.streams.delete(job.id);
  state.segments.set(job.id, []);
  await refreshJob(job.id);
  if (state.openId !== job.id) return;
  renderTranscript([]);
  setupAudio(job.id);
  $("delete").focus();
}

// -- wiring -------------------------------------------------------------------------------

function rerender() {
  apply();
  $("lang").value = language();
  for (const button of document.querySelectorAll(".dl")) {
    button.setAttribute("aria-label", t("download", { f: button.textContent }));
  }
  renderUploads();
  renderJobs();
  if (state.openId) {
    renderViewHead();
    applySearch();
  }
  if (state.jobApi === false) notify(t("noJobApi"));
}

function wire() {
  $("lang").addEventListener("change", (event) => {
    setLanguage(event.target.value);
    rerender();
  });
  $("key-button").addEventListener("click", () => {
    state.keyJustEntered = false;
    $("key-error").hidden = true;
    $("key-forget").hidden = !api.getKey();
    $("key-input").value = "";
    $("key-dialog").showModal();
  });
  $("key-form").addEventListener("submit", saveKey);
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-forget").addEventListener("click", () => {
    api.setKey("");
    $("key-dialog").close();
    boot();
  });
  $("pick").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    addFiles([...event.target.files]);
    event.target.value = "";
  });
  const drop = $("drop");
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    drop.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) drop.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    drop.classList.remove("dragging");
    addFiles([...event.dataTransfer.files]);
  });
  $("more").addEventListener("click", () => loadJobs({ more: true }));
  $("close").addEventListener("click", closeView);
  for (const button of document.querySelectorAll(".dl")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  $("copy").addEventListener("click", copyText);
  $("cancel").addEventListener("click", () => removeJob(true));
  $("delete").addEventListener("click", () => removeJob(false));
  $("search").addEventListener("input", applySearch);
  $("filter").addEventListener("change", applySearch);
  $("transcript").addEventListener("click", (event) => {
    const word = event.target.closest?.(".w");
    if (word) seek(Number(word.dataset.start));
  });
  const player = $("player");
  player.addEventListener("play", () => requestAnimationFrame(tick));
  player.addEventListener("seeked", () => highlight(player.currentTime));
  player.addEventListener("timeupdate", () => highlight(player.currentTime));
  player.addEventListener("error", onPlayerError);
  player.addEventListener("pause", onPlayerPause);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.openId && !document.querySelector("dialog[open]")) closeView();
  });
}

/** Check the key with a cheap call, then load the list; a 401 opens the key dialog. */
async function boot() {
  try {
    await api.request("/v1/models");
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 0) {
      setOffline(true);
      setTimeout(boot, POLL_MS);
    }
    return;
  }
  state.keyJustEntered = false;
  setOffline(false);
  await loadJobs();
  const wanted = decodeURIComponent((location.hash.match(/^#job=(.+)$/) || [])[1] || "");
  if (wanted && state.jobs.has(wanted) && !state.openId) openView(wanted);
  if (!state.started) {
    state.started = true;
    setInterval(() => {
      if (state.jobApi === false || document.hidden) return;
      const busy = state.order.some((id) => !TERMINAL.has(state.jobs.get(id)?.status));
      if (busy || state.offline) loadJobs();
    }, POLL_MS);
  }
}

wire();
rerender();
document.body.dataset.ready = "true";
boot();
