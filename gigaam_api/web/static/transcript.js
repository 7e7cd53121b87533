// The open job's text: a block per segment with its start time, a <span> per word with its
// times, the word being spoken highlighted while the player plays, a click on a word or a
// time to seek there, and search (matches marked, or only the matching parts shown).

import { t } from "./i18n.js";
import { $, clock } from "./ui.js";

let words = []; // [{start, end, el}] of the shown transcript, in time order
let currentWord = -1;

/** A segment as the server sends it (an event's, or /result's) → {start, end, text, words}. */
export function normalizeSegment(raw) {
  const s = raw && typeof raw.segment === "object" && raw.segment ? raw.segment : raw || {};
  const timed = (Array.isArray(s.words) ? s.words : [])
    .map((w) => ({ text: String(w.word ?? w.text ?? "").trim(), start: Number(w.start) || 0, end: Number(w.end) || 0 }))
    .filter((w) => w.text);
  return { start: Number(s.start) || 0, end: Number(s.end) || 0, text: String(s.text ?? "").trim(), words: timed };
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
  wrap.append(time, text);
  return wrap;
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

/** Search as the person types, seek on a word's click, highlight as the player moves. */
export function wireTranscript() {
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
}
