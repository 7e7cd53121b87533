// The open job's text to take away: TXT, SRT, VTT or JSON as a file (from /result, named after
// the recording), or the plain text copied to the clipboard.

import * as api from "./api.js";
import { t } from "./i18n.js";
import { state } from "./state.js";
import { $, describe, notify } from "./ui.js";

const FORMATS = {
  txt: "response_format=text",
  srt: "response_format=srt",
  vtt: "response_format=vtt",
  json: "response_format=verbose_json&timestamp_granularities[]=word&timestamp_granularities[]=segment",
};

/** The recording's name without its extension, safe as a file name. */
function baseName(name) {
  const cleaned = String(name || "transcript").replace(/[\\/:*?"<>|]+/g, "_");
  const dot = cleaned.lastIndexOf(".");
  return dot > 0 ? cleaned.slice(0, dot) : cleaned;
}

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

/** The download buttons' spoken names, in the current language. */
export function labelDownloads() {
  for (const button of document.querySelectorAll(".dl")) {
    button.setAttribute("aria-label", t("download", { f: button.textContent }));
  }
}

export function wireDownloads() {
  for (const button of document.querySelectorAll(".dl")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  $("copy").addEventListener("click", copyText);
}
