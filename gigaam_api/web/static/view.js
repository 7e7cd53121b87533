// The open job: its head (name, status, progress, error, which buttons apply), its text (live
// from the events, then the final one from /result) and audio; opening, closing, cancelling
// and deleting it.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { ensureStreams, forget, refreshJob, stopFollowing } from "./jobs.js";
import { setupAudio, stopAudio } from "./player.js";
import { labelFor } from "./speakers.js";
import { TERMINAL, putJob, replaceSegments, setOpen, state, subscribe } from "./state.js";
import { appendSegment, normalizeSegment, renderTranscript } from "./transcript.js";
import { $, clock, describe, notify, statusText } from "./ui.js";

let resultLoaded = false; // the open job's text came from /result (final), not from events

export function openView(id) {
  const job = state.jobs.get(id);
  if (!job) return;
  resultLoaded = false;
  setOpen(id);
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  $("view").hidden = false;
  $("search").value = "";
  $("search-count").textContent = "";
  renderTranscript(state.segments.get(id) || []);
  renderViewHead();
  setupAudio(id);
  if (job.status === "completed") loadResult(id);
  else ensureStreams();
  $("view-title").focus(); // moves keyboard users (and phone screens) to the opened job
}

export function closeView() {
  setOpen(null);
  $("view").hidden = true;
  stopAudio();
  history.replaceState(null, "", location.pathname);
}

export function renderViewHead() {
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
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    // A job that labels speakers names them only once done: its object as of now says how
    // the names in the result map back to labels (the event that said "done" did not).
    const labelled = Array.isArray(state.jobs.get(id)?.speakers);
    const [result, job] = await Promise.all([
      api.getJson(`${path}/result?response_format=verbose_json&timestamp_granularities[]=word&timestamp_granularities[]=segment`),
      labelled ? api.getJson(path) : null,
    ]);
    body = result;
    if (job) putJob(job);
  } catch (error) {
    if (state.openId === id) notify(describe(error));
    return;
  }
  if (state.openId !== id) return;
  const job = state.jobs.get(id);
  const segments = (body.segments || []).map((s) => {
    const segment = normalizeSegment(s);
    return { ...segment, speaker: labelFor(job, segment.speaker) };
  });
  let index = 0;
  for (const raw of body.words || []) {
    const word = normalizeSegment({ words: [raw] }).words[0];
    if (!word || !segments.length) continue;
    while (index < segments.length - 1 && word.start >= segments[index].end - 0.0005 && word.start >= segments[index + 1].start - 0.0005) index++;
    segments[index].words.push(word);
  }
  resultLoaded = true;
  replaceSegments(id, segments);
  renderTranscript(segments);
  renderViewHead();
}

// -- cancel, delete -----------------------------------------------------------------------

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
  stopFollowing(job.id);
  replaceSegments(job.id, []);
  await refreshJob(job.id);
  if (state.openId !== job.id) return;
  renderTranscript([]);
  renderViewHead();
  setupAudio(job.id);
  $("delete").focus();
}

/** Follow the store (the open job changing or going away) and the view's own buttons. */
export function wireView() {
  subscribe("jobs", () => {
    if (!state.openId) return;
    if (state.jobs.has(state.openId)) renderViewHead();
    else closeView(); // deleted, here or elsewhere
  });
  subscribe("job", ({ id, event }) => {
    if (id !== state.openId) return;
    renderViewHead();
    if (event === "job.completed" && state.jobs.get(id)?.status === "completed") loadResult(id);
  });
  subscribe("segments", ({ id, segment }) => {
    if (id !== state.openId || resultLoaded) return; // the final text is not replaced by live
    if (segment) appendSegment(segment);
    else renderTranscript(state.segments.get(id) || []);
    renderViewHead();
  });
  $("close").addEventListener("click", closeView);
  $("cancel").addEventListener("click", () => removeJob(true));
  $("delete").addEventListener("click", () => removeJob(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.openId && !document.querySelector("dialog[open]")) closeView();
  });
}
