// The open job's text: a block per segment with its start time, a <span> per word with its
// times, the word being spoken highlighted while the player plays, a click on a word or a
// time to seek there, and search (matches marked, or only the matching parts shown). A job
// with speakers shows each segment's speaker in its colour (a click renames it) and hides the
// speakers filtered out.

import { t } from "./i18n.js";
import { askRename, colourOf, speakerName } from "./speakers.js";
import { state, subscribe } from "./state.js";
import { $, clock } from "./ui.js";

let words = []; // [{start, end, el}] of the shown transcript, in time order
let currentWord = -1;

/**
 * A segment as the server sends it (an event's, or /result's) → {start, end, text, words,
 * speaker}; `speaker` is what the server wrote (null without speakers): /result's loader turns
 * that name into the speaker's label.
 */
export function normalizeSegment(raw) {
  const s = raw && typeof raw.segment === "object" && raw.segment ? raw.segment : raw || {};
  const timed = (Array.isArray(s.words) ? s.words : [])
    .map((w) => ({ text: String(w.word ?? w.text ?? "").trim(), start: Number(w.start) || 0, end: Number(w.end) || 0 }))
    .filter((w) => w.text);
  const speaker = typeof s.speaker === "string" && s.speaker ? s.speaker : null;
  return { start: Number(s.start) || 0, end: Number(s.end) || 0, text: String(s.text ?? "").trim(), words: timed, speaker };
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
  const body = document.createElement("div");
  body.className = "seg-body";
  if (segment.speaker) {
    const job = state.jobs.get(state.openId);
    const colour = String(colourOf(segment.speaker));
    wrap.classList.add("has-spk");
    wrap.dataset.speaker = segment.speaker;
    wrap.dataset.c = colour;
    const who = document.createElement("button");
    who.type = "button";
    who.className = "spk";
    who.dataset.label = segment.speaker;
    who.dataset.c = colour;
    who.addEventListener("click", () => askRename(segment.speaker, who));
    nameSpeaker(who, speakerName(job, segment.speaker));
    body.append(who);
  }
  const text = document.createElement("p");
  text.className = "seg-text";
  const shown = segment.words.length ? segment.words : [{ text: segment.text, start: segment.start, end: segment.end }];
  shown.forEach((word, i) => {
    if (i) text.append(" ");
    const span = document.createElement("span");
    span.className = "w";
    span.textContent = word.text;
    span.dataset.start = String(word.start);
    span.dataset.end = String(word.end);
    text.append(span);
    words.push({ start: word.start, end: word.end, el: span });
  });
  wrap.dataset.text = segment.text.toLowerCase();
  body.append(text);
  wrap.append(time, body);
  return wrap;
}

function nameSpeaker(button, name) {
  button.textContent = name;
  button.setAttribute("aria-label", t("renameSpeaker", { name }));
}

/** The shown names after a rename (or a language change: the buttons' spoken names). */
export function renameShown() {
  const job = state.jobs.get(state.openId);
  for (const button of $("transcript").querySelectorAll(".spk")) {
    nameSpeaker(button, speakerName(job, button.dataset.label));
  }
}

export function renderTranscript(segments) {
  words = [];
  currentWord = -1;
  $("transcript").replaceChildren(...segments.map((s) => segmentElement(s)));
  applySearch();
}

export function appendSegment(segment) {
  $("transcript").append(segmentElement(segment));
  words.sort((a, b) => a.start - b.start);
  applySearch();
}

// -- following the player -----------------------------------------------------------------

function seek(seconds) {
  $("player").currentTime = seconds;
  highlight(seconds);
}

function wordAt(seconds) {
  let lo = 0;
  let hi = words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start <= seconds + 0.001) {
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
  if (index === currentWord) return;
  words[currentWord]?.el.classList.remove("current");
  currentWord = index;
  const word = words[index];
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

export function applySearch() {
  const query = $("search").value.trim().toLowerCase();
  const only = $("filter").checked;
  const tokens = query.split(/\s+/).filter(Boolean);
  let count = 0;
  for (const seg of $("transcript").children) {
    const match = Boolean(query) && seg.dataset.text.includes(query);
    const filtered = Boolean(seg.dataset.speaker) && state.hiddenSpeakers.has(seg.dataset.speaker);
    if (match && !filtered) count++;
    seg.classList.toggle("match", match);
    seg.hidden = filtered || (Boolean(query) && only && !match);
    for (const word of seg.querySelectorAll(".w")) {
      const text = word.textContent.toLowerCase();
      word.classList.toggle("hit", match && tokens.some((token) => text.includes(token)));
    }
  }
  $("search-count").textContent = query ? (count ? t("matches", { n: count }) : t("noMatches")) : "";
}

/** Search as the person types, seek on a word's click, highlight as the player moves. */
export function wireTranscript() {
  $("search").addEventListener("input", applySearch);
  $("filter").addEventListener("change", applySearch);
  subscribe("speakers", ({ id }) => {
    if (id !== state.openId) return;
    renameShown();
    applySearch();
  });
  $("transcript").addEventListener("click", (event) => {
    const word = event.target.closest?.(".w");
    if (word) seek(Number(word.dataset.start));
  });
  const player = $("player");
  player.addEventListener("play", () => requestAnimationFrame(tick));
  player.addEventListener("seeked", () => highlight(player.currentTime));
  player.addEventListener("timeupdate", () => highlight(player.currentTime));
}
