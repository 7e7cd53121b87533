// What every part of the page shares: finding an element, the notice line at the top, and the
// wording of times, job statuses and errors (always through the current language).

import { t } from "./i18n.js";
import { state, subscribe } from "./state.js";

export const $ = (id) => document.getElementById(id);

export function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function statusText(job) {
  if (job.status === "running") {
    const pct = Math.round((job.progress || 0) * 100);
    return `${t("status_running")} ${pct}%`;
  }
  return t(`status_${job.status}`) || job.status;
}

/** A sentence a person understands, for an ApiError or a job's error object. */
export function describe(error) {
  if (!error) return "";
  const code = error.code || "";
  const status = error.status ?? 0;
  if (status === 0 || code === "network") return t("err_network");
  if (status === 401 || code === "invalid_api_key") return t("err_auth");
  if (["unsupported_audio", "no_audio_stream", "invalid_audio", "corrupt_audio"].includes(code)) {
    return t("err_not_audio");
  }
  if (code === "empty_audio") return t("err_empty");
  if (status === 400 && /^(num|min|max)_speakers$/.test(error.param || "")) return t("err_num_speakers");
  if (status === 400 && error.param === "keywords") return t("err_keywords", { msg: error.message });
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

/** The notice line at the top of the page; "" hides it. */
export function notify(text) {
  const notice = $("notice");
  notice.textContent = text || "";
  notice.hidden = !text;
}

/** Say so when the server stops answering, and (for a moment) when it is back. */
export function wireNotices() {
  subscribe("offline", () => {
    notify(state.offline ? t("offline") : t("backOnline"));
    if (!state.offline) {
      setTimeout(() => !state.offline && $("notice").textContent === t("backOnline") && notify(""), 4000);
    }
  });
}
