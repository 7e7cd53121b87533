// The page's one store: what the server said about the jobs, the uploads in flight, the job
// that is open. Every other module reads `state` and changes it only through the functions
// below; each tells the subscribers of its topic, so whatever shows a thing redraws when that
// thing changes, whoever changed it.
//
// Topics (the listener's argument):
//   "jobs"     — the list changed: jobs added, merged or gone, their order, hasMore (none)
//   "job"      — one job changed by its event stream: {id, event} (the event's name)
//   "segments" — a job's live text: {id, segment} appended, or {id, segment: null} replaced
//   "uploads"  — the uploads in flight changed (none)
//   "open"     — a job was opened, or the view closed (none)
//   "speakers" — a job's speaker names changed, or which speakers the view shows: {id}
//   "offline"  — the server stopped or started answering (none)
//   "languages" — the served model's spoken languages became known (none)
//   "live"     — the recording's state or its live text changed (none)
//
// Parts that are one module's business stay in that module (event streams, rows, the word
// index, the audio link's timer); this holds only what several parts share.

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
/** Jobs per GET /v1/jobs page. */
export const PAGE = 50;

const data = {
  jobs: new Map(), // id -> job object as the server sent it (progress updated from events)
  order: [], // job ids, newest first
  hasMore: false,
  uploads: [], // {localId, file, fields, progress, status: waiting|uploading|failed, error}
  segments: new Map(), // job id -> [{start, end, text, words: [{text, start, end}]}]
  openId: null,
  hiddenSpeakers: new Set(), // labels of the open job's speakers filtered out of the view
  jobApi: null, // null until known; false when the server has no /v1/jobs
  offline: false,
  speechLanguages: [], // ISO 639-1 codes the served model transcribes (GET /v1/models)
  recording: "idle", // the microphone: idle | starting | recording | saving
  turns: [], // the recording's live text: {id (item_id), text, final}, in the order spoken
};

/** The state, to read: assigning a field here throws (the functions below change it). */
export const state = new Proxy(data, {
  set() {
    throw new TypeError("the page's state changes only through the functions of state.js");
  },
  deleteProperty() {
    throw new TypeError("the page's state changes only through the functions of state.js");
  },
});

const listeners = new Map(); // topic -> Set of listeners

/** Call `listener(detail)` after every change of `topic`; returns a function that stops it. */
export function subscribe(topic, listener) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(listener);
  return () => listeners.get(topic).delete(listener);
}

function emit(topic, detail) {
  for (const listener of listeners.get(topic) || []) listener(detail);
}

// -- jobs ---------------------------------------------------------------------------------

function merge(job) {
  const known = data.jobs.get(job.id);
  // a stream may be ahead of a list snapshot taken a moment earlier
  if (known && !TERMINAL.has(job.status) && known.status === job.status) {
    job = { ...job, progress: Math.max(job.progress ?? 0, known.progress ?? 0) };
  }
  data.jobs.set(job.id, { ...known, ...job });
  const renamed = "speakers" in job && JSON.stringify(job.speakers) !== JSON.stringify(known?.speakers);
  return renamed ? job.id : null;
}

/** Tell the "speakers" listeners about the jobs whose speakers merge() found changed. */
function emitSpeakers(ids) {
  for (const id of ids) if (id) emit("speakers", { id });
}

// A listing is a snapshot of the moment it was asked for: a job added here (an upload) or
// dropped here (a delete) while it was on its way is newer than the listing, which must not
// undo it. Every such change is numbered; a listing says which number it was asked after.
let changeSeq = 0;
const addedAt = new Map(); // job id -> number of its putJob(first) here
const droppedAt = new Map(); // job id -> number of its dropJob here

/** The number to pass to applyPage() as `since`: call it just before asking for the list. */
export function listingStarted() {
  return changeSeq;
}

/** A page of GET /v1/jobs asked for after change `since`: the first page replaces the head
 * of the list, `more` appends. */
export function applyPage(jobs, { more, hasMore, since = changeSeq }) {
  const ids = [];
  const renamed = [];
  for (const job of jobs) {
    if (!job || !job.id || (droppedAt.get(job.id) ?? -1) > since) continue;
    renamed.push(merge(job));
    ids.push(job.id);
  }
  if (more) {
    data.order.push(...ids.filter((id) => !data.order.includes(id)));
    data.hasMore = hasMore;
  } else {
    // jobs added here after the listing was asked for stay on top, as putJob() put them
    const newer = data.order.filter((id) => !ids.includes(id) && (addedAt.get(id) ?? -1) > since);
    // jobs deleted elsewhere disappear; those loaded by "Show more" stay
    const kept = [...newer, ...ids];
    const tail = data.order.slice(PAGE).filter((id) => !kept.includes(id));
    for (const id of data.order) if (!kept.includes(id) && !tail.includes(id)) data.jobs.delete(id);
    data.order = [...kept, ...tail];
    data.hasMore = hasMore || data.hasMore;
  }
  emit("jobs");
  emitSpeakers(renamed);
}

/** One job as the server sent it; `first` lists a job not yet listed on top (a new upload). */
export function putJob(job, { first = false } = {}) {
  if (!job || !job.id) return;
  const renamed = merge(job);
  if (first && !data.order.includes(job.id)) {
    data.order.unshift(job.id);
    addedAt.set(job.id, ++changeSeq);
  }
  emit("jobs");
  emitSpeakers([renamed]);
}

/** The fields an event of the job's stream changed; `event` is that event's name. */
export function updateJob(id, changes, event) {
  const job = data.jobs.get(id);
  if (!job) return;
  Object.assign(job, changes);
  emit("job", { id, event });
}

/** A job that is gone (deleted here or elsewhere). */
export function dropJob(id) {
  droppedAt.set(id, ++changeSeq);
  data.jobs.delete(id);
  data.segments.delete(id);
  data.order = data.order.filter((other) => other !== id);
  emit("jobs");
}

export function setJobApi(available) {
  data.jobApi = available;
}

/** The served model's languages, from its /v1/models card (`[]`: not said). */
export function setSpeechLanguages(languages) {
  const list = Array.isArray(languages) ? languages.filter((code) => typeof code === "string") : [];
  if (list.join() === data.speechLanguages.join()) return;
  data.speechLanguages = list;
  emit("languages");
}

export function setOffline(offline) {
  if (offline === data.offline) return;
  data.offline = offline;
  emit("offline");
}

// -- a job's text -------------------------------------------------------------------------

/** A job's whole text at once: [] when a new stream replays it from the start, or the final. */
export function replaceSegments(id, segments) {
  data.segments.set(id, segments);
  emit("segments", { id, segment: null });
}

/** A live segment; false (and nothing changes) when it is one already had (a replay). */
export function addSegment(id, segment) {
  const list = data.segments.get(id) || [];
  if (list.some((other) => other.start === segment.start && other.text === segment.text)) {
    return false;
  }
  list.push(segment);
  data.segments.set(id, list);
  emit("segments", { id, segment });
  return true;
}

// -- the open job, the uploads ------------------------------------------------------------

export function setOpen(id) {
  data.openId = id;
  data.hiddenSpeakers = new Set(); // every speaker shows again in the next job opened
  emit("open");
}

/** Show or hide the open job's speaker `label` in the view (the speaker filter). */
export function setSpeakerShown(label, shown) {
  if (shown) data.hiddenSpeakers.delete(label);
  else data.hiddenSpeakers.add(label);
  emit("speakers", { id: data.openId });
}

let uploadSeq = 0;

/** Files to upload, each with the form `fields` chosen for it ([[name, value], …]). */
export function addUploads(files, fields = []) {
  for (const file of files) {
    data.uploads.push({ localId: ++uploadSeq, file, fields, progress: 0, status: "waiting", error: null });
  }
  emit("uploads");
}

export function updateUpload(upload, changes) {
  Object.assign(upload, changes);
  emit("uploads");
}

export function removeUpload(upload) {
  data.uploads = data.uploads.filter((other) => other !== upload);
  emit("uploads");
}

// -- the recording (live.js) --------------------------------------------------------------

export function setRecording(status) {
  data.recording = status;
  if (status === "starting") data.turns = [];
  emit("live");
}

function turn(id) {
  let found = data.turns.find((other) => other.id === id);
  if (!found) data.turns.push((found = { id, text: "", final: false }));
  return found;
}

/** A turn was heard (speech_started), an interim piece of it (delta), or its final text. */
export function liveTurn(id, { delta = "", final = null } = {}) {
  const item = turn(id);
  if (item.final) return;
  if (final !== null) Object.assign(item, { text: final, final: true });
  else item.text += delta;
  emit("live");
}
