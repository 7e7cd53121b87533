// Who said what: the "label speakers" choice at upload, a job's speakers as a row of toggles
// that filter the transcript, a colour per speaker, and renaming a speaker (PATCH /v1/jobs/{id}).
//
// The server decides the labels (A, B, … in order of first appearance) when the audio is done
// and keeps the names people give them; every format it sends, downloads included, already
// carries the names. The page keeps each segment's *label* (stable, so is its colour) and
// shows the name the job object has for it now.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { putJob, setSpeakerShown, state, subscribe } from "./state.js";
import { $, describe } from "./ui.js";

/** Colours in style.css (--spk-0 … --spk-7), each readable on the panel in light and dark. */
export const PALETTE = 8;

/** A label's colour (an index into the palette): A, B, C… in turn, other labels by a hash. */
export function colourOf(label) {
  const text = String(label ?? "");
  if (/^[A-Z]$/.test(text)) return (text.charCodeAt(0) - 65) % PALETTE;
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % PALETTE;
}

/** The job's speakers as the server listed them: [{label, name}] ([] when none). */
export function speakersOf(job) {
  return Array.isArray(job?.speakers) ? job.speakers.filter((s) => s && s.label) : [];
}

/** The name the job gives speaker `label` now (the label itself when not renamed). */
export function speakerName(job, label) {
  const found = speakersOf(job).find((s) => s.label === label);
  return found?.name || label;
}

/** The label behind a name as /result shows it (names replace labels there). */
export function labelFor(job, name) {
  if (name == null || name === "") return null;
  const speakers = speakersOf(job);
  const found = speakers.find((s) => s.name === name) || speakers.find((s) => s.label === name);
  return found ? found.label : String(name);
}

// -- at upload ----------------------------------------------------------------------------

/** The form fields the upload choice adds to POST /v1/jobs: [[name, value], …]. */
export function uploadFields() {
  if (!$("diarize").checked) return [];
  const fields = [["diarize", "true"]];
  const count = $("num-speakers").value.trim();
  if (count) fields.push(["num_speakers", count]);
  return fields;
}

// -- the toggles above the transcript -----------------------------------------------------

/** The open job's speakers as toggle buttons (pressed = shown); hidden when it has none. */
export function renderSpeakers() {
  const job = state.jobs.get(state.openId);
  const speakers = job?.status === "completed" ? speakersOf(job) : [];
  const bar = $("speakers");
  bar.hidden = speakers.length === 0;
  const list = $("speaker-chips");
  const same = speakers.length === list.children.length && speakers.every((s, i) => list.children[i].dataset.label === s.label);
  if (!same) list.replaceChildren(...speakers.map(({ label }) => chip(label)));
  // updated in place, so a toggle pressed from the keyboard keeps the focus
  for (const button of list.children) {
    const name = speakerName(job, button.dataset.label);
    const shown = !state.hiddenSpeakers.has(button.dataset.label);
    button.setAttribute("aria-pressed", String(shown));
    button.title = t(shown ? "speakerHide" : "speakerShow", { name });
    button.textContent = name;
  }
}

function chip(label) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "spk-chip";
  button.dataset.label = label;
  button.dataset.c = String(colourOf(label));
  button.addEventListener("click", () => setSpeakerShown(label, state.hiddenSpeakers.has(label)));
  return button;
}

// -- renaming -----------------------------------------------------------------------------

let renaming = null; // {jobId, label, opener} while the dialog is open

/** Open the rename dialog for the open job's speaker `label`; `opener` gets the focus back. */
export function askRename(label, opener) {
  const job = state.jobs.get(state.openId);
  if (!job) return;
  renaming = { jobId: job.id, label, opener };
  $("speaker-dialog-title").textContent = t("renameTitle", { label });
  $("speaker-name-hint").textContent = t("renameHint", { label });
  const input = $("speaker-name");
  input.value = speakerName(job, label) === label ? "" : speakerName(job, label);
  input.placeholder = label;
  $("speaker-error").hidden = true;
  $("speaker-dialog").showModal();
  input.focus();
  input.select();
}

function renameError(error) {
  if (error instanceof api.ApiError && error.status === 400 && String(error.param || "").startsWith("speakers")) {
    return t("err_speaker_name");
  }
  return describe(error);
}

async function saveName(event) {
  event.preventDefault();
  if (!renaming) return;
  const { jobId, label } = renaming;
  const error = $("speaker-error");
  const save = $("speaker-save");
  save.disabled = true;
  try {
    const job = await api.getJson(`/v1/jobs/${encodeURIComponent(jobId)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ speakers: { [label]: $("speaker-name").value.trim() } }),
    });
    putJob(job);
    $("speaker-dialog").close();
  } catch (thrown) {
    error.textContent = renameError(thrown);
    error.hidden = false;
  } finally {
    save.disabled = false;
  }
}

/** The upload choice, the toggles (redrawn as the open job or its speakers change), renaming. */
export function wireSpeakers() {
  const count = $("num-speakers");
  const sync = () => {
    count.disabled = !$("diarize").checked;
  };
  $("diarize").addEventListener("change", sync);
  sync();
  subscribe("open", renderSpeakers);
  subscribe("job", ({ id }) => id === state.openId && renderSpeakers());
  subscribe("speakers", ({ id }) => id === state.openId && renderSpeakers());
  $("speaker-form").addEventListener("submit", saveName);
  $("speaker-cancel").addEventListener("click", () => $("speaker-dialog").close());
  $("speaker-dialog").addEventListener("close", () => {
    const opener = renaming?.opener;
    renaming = null;
    if (opener?.isConnected) opener.focus();
  });
}
