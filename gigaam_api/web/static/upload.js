// Uploads: files chosen or dropped become jobs (POST /v1/jobs), one at a time, each with its
// progress bar, and a failed one offers "retry" and "dismiss". When the served model has more
// than one language, a choice of the spoken language is shown and sent with each file, with
// the speaker choice (speakers.js) and the keywords (keywords.js).

import * as api from "./api.js";
import { t } from "./i18n.js";
import { ensureStreams } from "./jobs.js";
import { keywordFields } from "./keywords.js";
import { uploadFields } from "./speakers.js";
import { addUploads, putJob, removeUpload, state, subscribe, updateUpload } from "./state.js";
import { $, describe, notify } from "./ui.js";

function addFiles(files) {
  if (state.jobApi === false) {
    notify(t("noJobApi"));
    return;
  }
  addUploads(files, [...languageFields(), ...uploadFields(), ...keywordFields()]);
  pumpUploads();
}

function pumpUploads() {
  if (state.uploads.some((u) => u.status === "uploading")) return;
  const next = state.uploads.find((u) => u.status === "waiting");
  if (!next) return;
  updateUpload(next, { status: "uploading" });
  const handle = api.uploadJob(next.file, (fraction) => updateUpload(next, { progress: fraction }), next.fields);
  handle.promise
    .then((job) => {
      putJob(job, { first: true });
      removeUpload(next);
      ensureStreams();
    })
    .catch((error) => updateUpload(next, { status: "failed", error }))
    .finally(() => pumpUploads());
}

function button(label, name, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "secondary";
  element.textContent = label;
  element.setAttribute("aria-label", `${label}: ${name}`);
  element.addEventListener("click", onClick);
  return element;
}

export function renderUploads() {
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
      const retry = button(t("retry"), upload.file.name, () => {
        updateUpload(upload, { status: "waiting", error: null });
        pumpUploads();
      });
      const dismiss = button(t("dismiss"), upload.file.name, () => removeUpload(upload));
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

/** The form field of the spoken language chosen (none: "detect", or a one-language model). */
function languageFields() {
  const code = state.speechLanguages.length > 1 ? $("speech-lang").value : "";
  return code ? [["language", code]] : [];
}

/** The spoken-language choice: "detect" and each language of the served model, in its words. */
export function renderLanguages() {
  const select = $("speech-lang");
  const chosen = select.value;
  const codes = state.speechLanguages;
  const options = ["", ...codes].map((code) => {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = t(code ? `speech_${code}` : "speech_auto");
    if (option.textContent === `speech_${code}`) option.textContent = code; // no name for it
    return option;
  });
  select.replaceChildren(...options);
  select.value = codes.includes(chosen) ? chosen : "";
  $("speech-lang-row").hidden = codes.length < 2;
}

/** The "Choose files" button, drag and drop anywhere on the page, and the uploads' rows. */
export function wireUploads() {
  subscribe("uploads", renderUploads);
  subscribe("languages", renderLanguages);
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
}
