// The job list: loading it page by page (GET /v1/jobs), following the unfinished jobs live
// (one event stream each, a few at a time) and drawing one row per job.

import * as api from "./api.js";
import { t } from "./i18n.js";
import {
  PAGE,
  TERMINAL,
  addSegment,
  applyPage,
  dropJob,
  listingStarted,
  putJob,
  replaceSegments,
  setJobApi,
  setOffline,
  state,
  subscribe,
  updateJob,
} from "./state.js";
import { normalizeSegment } from "./transcript.js";
import { $, clock, describe, notify, statusText } from "./ui.js";

const MAX_STREAMS = 3; // browsers allow ~6 connections per server; keep some for everything else

const streams = new Map(); // job id -> AbortController of its event stream
const rows = new Map(); // job id -> its <li>
let openJob = () => {}; // what a click on a row does (set by wireJobs)

// -- loading ------------------------------------------------------------------------------

export async function loadJobs({ more = false } = {}) {
  const after = more && state.order.length ? `&after=${encodeURIComponent(state.order.at(-1))}` : "";
  const since = listingStarted();
  let page;
  try {
    page = await api.getJson(`/v1/jobs?limit=${PAGE}${after}`);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404 && !error.code) {
      setJobApi(false);
      notify(t("noJobApi"));
      return;
    }
    if (error instanceof api.ApiError && error.status === 0) setOffline(true);
    else if (error instanceof api.ApiError && error.status !== 401) notify(t("loadFailed", { msg: describe(error) }));
    return;
  }
  setOffline(false);
  setJobApi(true);
  applyPage(page.data || [], { more, hasMore: Boolean(page.has_more), since });
  ensureStreams();
}

export async function refreshJob(id) {
  try {
    putJob(await api.getJson(`/v1/jobs/${encodeURIComponent(id)}`));
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 404) forget(id);
  }
}

/** Stop following a job and drop it from the page (it is gone on the server). */
export function forget(id) {
  stopFollowing(id);
  dropJob(id);
}

// -- live progress: one event stream per unfinished job (a few at a time) ------------------

export function stopFollowing(id) {
  streams.get(id)?.abort();
  streams.delete(id);
}

export function ensureStreams() {
  const unfinished = state.order.filter((id) => !TERMINAL.has(state.jobs.get(id)?.status));
  const byPriority = [
    ...unfinished.filter((id) => id === state.openId),
    ...unfinished.filter((id) => state.jobs.get(id)?.status === "running"),
    ...unfinished.slice().reverse(), // oldest queued first: it starts next
  ];
  const open = state.openId;
  if (open && unfinished.includes(open) && !streams.has(open) && streams.size >= MAX_STREAMS) {
    // the opened job's live text matters more than another row's progress bar
    const [victim, controller] = streams.entries().next().value;
    controller.abort();
    streams.delete(victim);
  }
  for (const id of byPriority) {
    if (streams.size >= MAX_STREAMS) break;
    if (!streams.has(id)) follow(id);
  }
}

function follow(id) {
  const controller = new AbortController();
  streams.set(id, controller);
  replaceSegments(id, []); // a new stream replays every segment from the first
  api
    .followEvents(id, {
      signal: controller.signal,
      onEvent: (name, data) => onJobEvent(id, name, data),
      onState: (s) => setOffline(s === "offline"),
    })
    .catch(() => null)
    .then((ended) => {
      if (streams.get(id) === controller) streams.delete(id);
      if (controller.signal.aborted) return;
      // Finished, or the stream was refused (job gone, key wrong): look at the job itself.
      // A job still unfinished is followed again by the next poll, not at once, so a
      // refusing server is not asked in a tight loop.
      refreshJob(id).then(() => ended && ensureStreams());
    });
}

function onJobEvent(id, name, data) {
  const job = state.jobs.get(id);
  if (!job) return;
  const payload = data && typeof data.job === "object" && data.job ? data.job : data || {};
  const changes = {};
  if (name === "job.progress") {
    if (payload.status) changes.status = payload.status;
    else if (job.status === "queued") changes.status = "running";
    if (Number.isFinite(payload.progress)) changes.progress = payload.progress;
    if (Number.isFinite(payload.processed_seconds)) changes.processed_seconds = payload.processed_seconds;
    if (Number.isFinite(payload.duration)) changes.duration = payload.duration;
  } else if (name === "job.segment") {
    if (addSegment(id, normalizeSegment(data)) && job.status === "queued") changes.status = "running";
  } else if (name.startsWith("job.")) {
    const final = name.slice(4);
    if (TERMINAL.has(final)) {
      changes.status = final;
      if (final === "completed") changes.progress = 1;
      if (payload.error) changes.error = payload.error;
    }
  }
  updateJob(id, changes, name);
}

// -- the rows -----------------------------------------------------------------------------

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
  open.addEventListener("click", () => openJob(id));
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
  const li = rows.get(id);
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

export function renderJobs() {
  const list = $("jobs");
  for (const [id, li] of rows) {
    if (!state.jobs.has(id)) {
      li.remove();
      rows.delete(id);
    }
  }
  state.order.forEach((id, index) => {
    let li = rows.get(id);
    if (!li) {
      li = makeRow(id);
      rows.set(id, li);
    }
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    updateRow(id);
  });
  $("jobs-empty").hidden = state.order.length > 0 || state.uploads.length > 0;
  $("more").hidden = !state.hasMore;
}

/** Draw the list whenever it changes; a click on a row calls `onOpen(id)`. */
export function wireJobs(onOpen) {
  openJob = onOpen;
  subscribe("jobs", renderJobs);
  subscribe("open", renderJobs); // the open row is marked (aria-current)
  subscribe("job", ({ id }) => updateRow(id));
  $("more").addEventListener("click", () => loadJobs({ more: true }));
}
