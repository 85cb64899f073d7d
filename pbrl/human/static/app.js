/* pbrl labelling viewer: shows the clips of one query on one shared clock and sends the answer.
 *
 * Plain browser JavaScript, no build step. The page holds a short queue of queries leased from
 * /api/next: the one on screen and the next, whose videos are already loading in a hidden box, so
 * that after an answer the next clips appear at once. A label is only taken as done after the
 * server's 200 (it is committed by then); on an error the pair stays on screen.
 *
 * Sync: the first video is the master. Every start (first play, loop, replay, resume, resync) is a
 * hard start: pause all, seek all to the same time, wait until all can play, then play() all in the
 * same task. While playing, each animation frame compares the followers with the master; a follower
 * more than half a frame off is set to the master's time by another hard start. The native `loop`
 * attribute is not used: when the master ends, all restart together.
 */
"use strict";

const TOKEN = document.querySelector('meta[name="pbrl-token"]').content;
const SPEEDS = [0.25, 0.5, 1, 1.5, 2];
const ANSWER_KEYS = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "equal", ArrowDown: "cant_tell" };
const ANSWER_TEXT = { left: "left", right: "right", equal: "equal", cant_tell: "can't tell", ranking: "ranking" };
const $ = (id) => document.getElementById(id);

// ----- server ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(path, body) {
  const init = { headers: { "X-PBRL-Token": TOKEN }, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    setOffline(true);
    throw new ApiError("the viewer server does not answer (is pbrl still running?)", 0, null);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (err) { /* not JSON: reported below by status */ }
  if (!res.ok) {
    const what = data && data.error ? data.error : `HTTP ${res.status}`;
    throw new ApiError(data && data.field ? `${data.field}: ${what}` : what, res.status, data && data.field);
  }
  return data;
}

// ----- media helpers -----------------------------------------------------------------------------

/** Resolve on the first of `events` on `el`, or after `ms`. */
function once(el, events, ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      events.forEach((e) => el.removeEventListener(e, done));
      resolve();
    };
    const timer = setTimeout(done, ms);
    events.forEach((e) => el.addEventListener(e, done));
  });
}

async function seekTo(video, t) {
  if (video.readyState < HTMLMediaElement.HAVE_METADATA) await once(video, ["loadedmetadata", "error"], 15000);
  if (!video.seeking && Math.abs(video.currentTime - t) < 1e-6) return;
  const seeked = once(video, ["seeked", "error"], 5000);
  video.currentTime = t;
  await seeked;
}

async function readyToPlay(video) {
  if (video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA) await once(video, ["canplay", "error"], 15000);
}

function release(item) {
  for (const v of item.videos) {
    v.pause();
    v.removeAttribute("src");
    v.load(); // frees the decoder and the buffered data
  }
  item.tiles.forEach((t) => t.remove());
}

// ----- the shared clock --------------------------------------------------------------------------

/** Plays, loops, pauses, seeks and changes the speed of several videos as one. */
class Clock {
  constructor() {
    this.videos = [];
    this.fps = 30;
    this.frames = 0;
    this.rate = 1;
    this.playing = false; // wanted state; `busy` while a hard start is under way
    this.busy = false;
    this.gen = 0; // bumped by every command, so a superseded start gives up
    this.restarts = 0; // loop restarts
    this.resyncs = 0;
    this.onStarted = null; // called after every successful start
    this.onBlocked = null; // called when the browser refuses to play
    this.onEnded = (e) => {
      if (e.target === this.master && this.playing && !this.busy) {
        this.restarts += 1;
        this.start(0);
      }
    };
  }

  get master() { return this.videos[0] || null; }

  get duration() {
    const d = this.master ? this.master.duration : NaN;
    return Number.isFinite(d) && d > 0 ? d : this.frames / this.fps;
  }

  attach(videos, fps, frames) {
    this.detach();
    this.videos = videos;
    this.fps = fps;
    this.frames = frames;
    for (const v of videos) {
      v.defaultPlaybackRate = this.rate;
      v.playbackRate = this.rate;
    }
    if (this.master) this.master.addEventListener("ended", this.onEnded);
  }

  detach() {
    this.gen += 1;
    if (this.master) this.master.removeEventListener("ended", this.onEnded);
    this.videos.forEach((v) => v.pause());
    this.videos = [];
    this.playing = false;
    this.busy = false;
  }

  /** Hard start at time `t`: all paused, all at `t`, all ready, then all play in one task. */
  async start(t = 0) {
    const gen = ++this.gen;
    const videos = this.videos;
    if (!videos.length) return false;
    this.playing = true;
    this.busy = true;
    videos.forEach((v) => v.pause());
    await Promise.all(videos.map((v) => seekTo(v, t)));
    if (gen !== this.gen) return false;
    await Promise.all(videos.map(readyToPlay));
    if (gen !== this.gen) return false;
    const broken = videos.find((v) => v.error);
    if (broken) {
      this.playing = this.busy = false;
      const why = broken.error.message || `media error ${broken.error.code}`;
      if (this.onBlocked) this.onBlocked(new Error(`a clip did not load (${why})`));
      return false;
    }
    try {
      await Promise.all(videos.map((v) => v.play()));
    } catch (err) {
      if (gen === this.gen) {
        this.playing = this.busy = false;
        if (this.onBlocked) this.onBlocked(err);
      }
      return false;
    }
    if (gen !== this.gen) return false;
    this.busy = false;
    if (this.onStarted) this.onStarted();
    return true;
  }

  /** Pause all, with the followers on the master's frame. */
  pause() {
    this.gen += 1;
    this.playing = this.busy = false;
    this.videos.forEach((v) => v.pause());
    if (this.master) this.seekAll(this.master.currentTime);
  }

  toggle() {
    if (this.playing) return this.pause();
    const t = this.master ? this.master.currentTime : 0;
    return this.start(t >= this.duration - 0.5 / this.fps ? 0 : t);
  }

  /** Paused seek of every video (scrub bar, frame steps). */
  seekAll(t) {
    const clamped = Math.max(0, Math.min(t, this.duration));
    this.videos.forEach((v) => { if (v.readyState >= HTMLMediaElement.HAVE_METADATA) v.currentTime = clamped; });
  }

  /** Pause and move `frames` frames forward (or back when negative). */
  step(frames) {
    if (!this.master) return;
    if (this.playing) {
      this.gen += 1;
      this.playing = this.busy = false;
      this.videos.forEach((v) => v.pause());
    }
    const last = Math.max(0, Math.round(this.duration * this.fps) - 1);
    const n = Math.max(0, Math.min(last, Math.round(this.master.currentTime * this.fps - 0.1) + frames));
    this.seekAll((n + 0.1) / this.fps); // a hair past the frame's start, so rounding cannot show the one before
  }

  setRate(rate) {
    this.rate = rate;
    for (const v of this.videos) {
      v.defaultPlaybackRate = rate;
      v.playbackRate = rate;
    }
  }

  /** Called every animation frame: keep the followers on the master's time. */
  check() {
    const m = this.master;
    if (!m || !this.playing || this.busy || m.paused) return;
    const tolerance = 0.5 / this.fps;
    for (const f of this.videos.slice(1)) {
      if (f.seeking) continue;
      const target = Math.min(m.currentTime, f.duration || Infinity);
      if (Math.abs(f.currentTime - target) > tolerance) {
        this.resyncs += 1;
        this.start(m.currentTime);
        return;
      }
    }
  }
}

// ----- page state --------------------------------------------------------------------------------

/**
 * The queries this page holds, leased from the server: items[0] is on screen, the others load in
 * the hidden box so that the next pair starts at once after an answer.
 *
 * Transitions: `fill` tops the queue up (one at a time; the flag is set before the first await,
 * so a fill that has nothing to do cannot leave a stale "busy" behind: the stall after an undo),
 * `remove` drops an answered item, `promote` puts an undone pair in front.
 */
class Queue {
  constructor(depth = 2) {
    this.items = [];
    this.depth = depth;
    this.filling = false;
  }

  get current() { return this.items[0] || null; }

  has(id) { return this.items.some((h) => h.query.id === id); }

  /** Lease queries until `depth` are held or the server has none; `onAdded(item)` after each. */
  async fill(onAdded) {
    if (this.filling) return;
    this.filling = true;
    try {
      while (this.items.length < this.depth) {
        const params = new URLSearchParams({ annotator: annotator() });
        if (this.items.length) params.set("exclude", this.items.map((h) => h.query.id).join(","));
        const data = await api(`/api/next?${params}`);
        if (!data.query) break;
        if (this.has(data.query.id)) break; // an undo put it here while the request was out
        const item = prepare(data.query);
        this.items.push(item);
        onAdded(item);
      }
    } finally {
      this.filling = false;
    }
  }

  remove(item) {
    const i = this.items.indexOf(item);
    if (i >= 0) this.items.splice(i, 1);
  }

  /** Put the pair with `query` first: the held item if there is one, else a newly prepared one. */
  promote(query) {
    let item = this.items.find((h) => h.query.id === query.id && h.query.repeat === query.repeat);
    if (item) this.remove(item);
    else item = prepare(query);
    this.items.unshift(item);
    return item;
  }
}

const clock = new Clock();
const queue = new Queue(2);
let shown = null; // the item on screen; null: the stage shows why nothing is there
let ranking = []; // K-way: screen positions picked so far, best first
let submitting = false;
let offline = false; // the server did not answer the last call
let labelsSent = 0;
let undos = 0;
let lastState = null;
let messageTimer = null;

function annotator() {
  return $("annotator").value.trim() || "anonymous";
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind !== "error") messageTimer = setTimeout(clearMessage, 4000);
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

/** Video elements (already loading, in the hidden box) for one query from the server. */
function prepare(query) {
  const videos = [];
  const tiles = query.clips.map((url, i) => {
    const tile = document.createElement("figure");
    tile.className = "tile";
    tile.dataset.position = String(i);
    const v = document.createElement("video");
    v.className = "clip";
    v.muted = true;
    v.defaultMuted = true;
    v.playsInline = true;
    v.preload = "auto";
    v.setAttribute("muted", "");
    v.setAttribute("playsinline", "");
    v.disablePictureInPicture = true;
    v.dataset.position = String(i);
    v.src = url;
    videos.push(v);
    const caption = document.createElement("figcaption");
    caption.textContent = query.k === 2 ? (i === 0 ? "← left" : "right →") : String(i + 1);
    const rank = document.createElement("span");
    rank.className = "rank";
    tile.append(v, caption, rank);
    tile.addEventListener("click", () => { if (shown && shown.query.k > 2) pick(i); });
    return tile;
  });
  $("preload").append(...tiles);
  return { query, videos, tiles, shownAt: null, playedAt: null, replays: 0 };
}

/** Keep a pair on screen and the next one loading (every answer, undo and poll calls this). */
function fill() {
  if (offline || !named()) return Promise.resolve();
  return queue.fill(() => { if (!shown) display(); })
    .catch((err) => { if (err.status !== 0) showMessage(err.message); })
    .finally(() => { if (!shown) display(); });
}

/** Put the queue's first item on screen, or the reason there is none. */
function display() {
  const item = queue.current;
  if (item === shown) {
    if (!item) showIdle();
    return;
  }
  if (shown) {
    clock.detach();
    if (queue.items.includes(shown)) $("preload").append(...shown.tiles); // demoted by an undo: keep it loaded
    else release(shown);
  }
  shown = item;
  ranking = [];
  const stage = $("stage");
  document.body.dataset.queryId = item ? String(item.query.id) : "";
  if (!item) {
    showIdle();
    return;
  }
  $("empty").hidden = true;
  stage.hidden = false;
  const k = item.query.k;
  stage.className = `stage k${k}`;
  const cols = k === 2 ? 2 : k <= 3 ? k : Math.ceil(Math.sqrt(k));
  stage.style.setProperty("--cols", String(cols));
  stage.style.setProperty("--rows", String(Math.ceil(k / cols)));
  stage.replaceChildren(...item.tiles);
  document.body.classList.toggle("mode-rank", k > 2);
  document.body.classList.toggle("mode-pair", k <= 2);
  $("rank-keys").textContent = `1…${k}`;
  $("repeat-tag").hidden = !item.query.repeat;
  document.body.dataset.phase = "labelling";
  item.shownAt = performance.now();
  item.playedAt = null;
  item.replays = 0;
  clock.restarts = 0;
  clock.attach(item.videos, item.query.fps, item.query.frames);
  $("scrub").max = String(item.query.duration_s);
  renderRanking();
  clock.start(0);
}

/** The stage's "nothing to show" box, with its reason. */
function showIdle() {
  document.body.dataset.phase = "empty";
  $("empty").hidden = false;
  $("stage").hidden = true;
  $("repeat-tag").hidden = true;
  renderIdle();
}

clock.onStarted = () => {
  if (shown && shown.playedAt === null) shown.playedAt = performance.now();
  clearMessageIf("click");
};
clock.onBlocked = (err) => {
  if (err && err.name === "NotAllowedError") {
    showMessage("the browser blocked playback: click anywhere or press space to play", "click");
    return;
  }
  showMessage(String(err && err.message ? err.message : err));
};

function clearMessageIf(kind) {
  if ($("message").classList.contains(kind)) clearMessage();
}

// ----- answering ---------------------------------------------------------------------------------

async function answer(kind) {
  if (!shown || submitting) return;
  if (offline) {
    showMessage("the viewer server is not answering: nothing can be labelled until it is back");
    return;
  }
  const item = shown;
  const q = item.query;
  if ((kind === "left" || kind === "right") && q.k !== 2) {
    showMessage(`this query ranks ${q.k} clips: press 1…${q.k} from best to worst`, "info");
    return;
  }
  const now = performance.now();
  const body = {
    query_id: q.id, annotator: annotator(), answer: kind, order: q.order,
    response_ms: Math.max(0, Math.round(now - (item.playedAt ?? item.shownAt))),
    replays: item.replays + clock.restarts, repeat: Boolean(q.repeat),
  };
  if (kind === "ranking") body.ranking = ranking.slice();
  submitting = true;
  document.body.dataset.phase = "submitting";
  try {
    await api("/api/label", body);
    labelsSent += 1;
    clearMessage();
    advance(item);
  } catch (err) {
    if (err.status === 409 && err.field === "query_id") { // labelled elsewhere, or the run ended: nothing to keep
      showMessage(`${err.message} — skipped`, "info");
      advance(item);
    } else {
      showMessage(`label not saved: ${err.message}`);
      if (kind === "ranking") { ranking = []; renderRanking(); }
    }
  } finally {
    submitting = false;
    if (shown) document.body.dataset.phase = "labelling";
  }
}

function advance(item) {
  queue.remove(item);
  display();
  fill();
  pollState();
}

async function undo() {
  if (submitting || offline) return;
  if (shown && shown.query.k > 2 && ranking.length) { // a partial ranking: take back the last pick
    ranking.pop();
    renderRanking();
    return;
  }
  submitting = true;
  try {
    const res = await api("/api/undo", { annotator: annotator() });
    undos += 1;
    queue.promote(res.query); // the undone pair, as it was shown, goes on screen next
    showMessage(`undid the label of query ${res.query_id}`, "info");
    display();
    pollState();
  } catch (err) {
    showMessage(`nothing undone: ${err.message}`);
  } finally {
    submitting = false;
  }
}

function pick(position) {
  if (!shown || submitting || shown.query.k <= 2) return;
  if (position < 0 || position >= shown.query.k || ranking.includes(position)) return;
  ranking.push(position);
  renderRanking();
  if (ranking.length === shown.query.k) answer("ranking");
}

function renderRanking() {
  if (!shown) return;
  shown.tiles.forEach((tile, i) => {
    const r = ranking.indexOf(i);
    tile.classList.toggle("picked", r >= 0);
    tile.querySelector(".rank").textContent = r >= 0 ? `#${r + 1}` : "";
  });
  const k = shown.query.k;
  $("rank-hint").textContent = `best to worst: press 1…${k} or click the clips` +
    (ranking.length ? ` · ${ranking.length} of ${k} picked` : "");
  $("submit-ranking").disabled = ranking.length !== k;
  document.body.dataset.ranking = ranking.join(",");
}

// ----- controls ----------------------------------------------------------------------------------

function replay() {
  if (!shown) return;
  shown.replays += 1;
  clock.start(0);
}

function setSpeed(rate) {
  clock.setRate(rate);
  document.querySelectorAll("#speeds button").forEach((b) => b.classList.toggle("on", Number(b.dataset.rate) === rate));
}

function cycleSpeed() {
  const i = SPEEDS.indexOf(clock.rate);
  setSpeed(SPEEDS[(i + 1) % SPEEDS.length]);
}

let scrubResume = false;
let scrubbing = false;

function bindControls() {
  const click = (id, fn) => $(id).addEventListener("click", (e) => { e.currentTarget.blur(); fn(); });
  click("play", () => clock.toggle());
  click("replay", replay);
  click("back", () => clock.step(-1));
  click("forward", () => clock.step(1));
  click("undo", undo);
  click("submit-ranking", () => { if (shown && ranking.length === shown.query.k) answer("ranking"); });
  document.querySelectorAll("button[data-answer]").forEach((b) =>
    b.addEventListener("click", (e) => { e.currentTarget.blur(); answer(b.dataset.answer); }));
  document.querySelectorAll("#speeds button").forEach((b) =>
    b.addEventListener("click", (e) => { e.currentTarget.blur(); setSpeed(Number(b.dataset.rate)); }));

  const scrub = $("scrub");
  scrub.addEventListener("pointerdown", () => {
    scrubbing = true;
    scrubResume = clock.playing;
    if (clock.playing) clock.pause();
  });
  scrub.addEventListener("input", () => {
    if (!scrubbing) { scrubResume = false; if (clock.playing) clock.pause(); }
    clock.seekAll(Number(scrub.value));
  });
  const endScrub = () => { // on window: the pointer may be released outside the bar
    if (!scrubbing) return;
    scrubbing = false;
    scrub.blur();
    if (scrubResume) clock.start(Number(scrub.value));
    scrubResume = false;
  };
  window.addEventListener("pointerup", endScrub);
  window.addEventListener("pointercancel", endScrub);

  const name = $("annotator");
  name.value = localStorage.getItem("pbrl.annotator") || "";
  name.addEventListener("change", () => {
    name.value = annotator();
    localStorage.setItem("pbrl.annotator", name.value);
  });
  name.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === "Escape") name.blur(); });

  // first visit: ask who is labelling before the first answer is stored under a name
  $("who-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const given = $("who-name").value.trim();
    if (!given) return;
    name.value = given;
    localStorage.setItem("pbrl.annotator", given);
    $("who").close();
    fill();
  });

  $("stats-button").addEventListener("click", (e) => { e.currentTarget.blur(); openStats(); });
  $("stats-close").addEventListener("click", () => $("stats").close());
}

function onKey(e) {
  const t = e.target;
  if (t && (t.isContentEditable || t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "range"))) return;
  if (e.ctrlKey || e.metaKey || e.altKey || $("stats").open || $("who").open) return;
  const k = e.key;
  let handled = true;
  if (k in ANSWER_KEYS) {
    if (!e.repeat) answer(ANSWER_KEYS[k]);
  } else if (k === "Backspace" || k === "z" || k === "Z") {
    if (!e.repeat) undo();
  } else if (k === " " || k === "Spacebar") {
    clock.toggle();
  } else if (k === "r" || k === "R") {
    replay();
  } else if (k === "[" || k === ",") {
    clock.step(-1);
  } else if (k === "]" || k === ".") {
    clock.step(1);
  } else if (k === "s" || k === "S") {
    cycleSpeed();
  } else if (k === "Enter") {
    if (!e.repeat && shown && shown.query.k > 2 && ranking.length === shown.query.k) answer("ranking");
  } else if (/^[1-9]$/.test(k)) {
    if (!e.repeat) pick(Number(k) - 1);
  } else {
    handled = false;
  }
  if (handled) e.preventDefault();
}

// ----- live progress -----------------------------------------------------------------------------

const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

function renderState(s) {
  $("instruction").textContent = s.instruction;
  const c = s.counts;
  const budget = s.budget ? ` / ${fmt(s.budget)}` : "";
  $("progress-text").textContent = `${fmt(c.labelled)}${budget} labelled` +
    (c.repeats ? ` · ${fmt(c.repeats)} repeats` : "") + ` · ${fmt(c.ready)} ready` +
    (c.rendering ? ` · ${fmt(c.rendering)} rendering` : "") + (c.failed ? ` · ${fmt(c.failed)} failed` : "");
  $("progress-fill").style.width = s.budget ? `${Math.min(100, (100 * c.labelled) / s.budget)}%` : "0%";
  const rate = s.labels_per_minute;
  $("rate").textContent = rate === null ? "– labels/min" :
    `${rate.toFixed(1)} labels/min` + (s.repeats_per_minute ? ` (+${s.repeats_per_minute.toFixed(1)} repeats)` : "");
  const tr = s.trainer;
  let trainer;
  if (tr.done) trainer = "training finished";
  else if (tr.step === null || tr.step === undefined) trainer = "trainer not started";
  else {
    trainer = `step ${fmt(tr.step)}` + (tr.total_steps ? ` / ${fmt(tr.total_steps)}` : "") +
      (tr.alive ? "" : " (not running)");
  }
  $("trainer").textContent = trainer;
  $("waiting-banner").hidden = !tr.waiting;
  $("waiting-time").textContent = tr.waiting && tr.waiting_s !== null ? ` · ${Math.round(tr.waiting_s)} s` : "";
  document.body.classList.toggle("agent-waiting", Boolean(tr.waiting));
  document.body.classList.toggle("finished", Boolean(tr.done));
  const items = s.history.map((h) => {
    const li = document.createElement("li");
    li.className = h.undone ? "undone" : "";
    li.title = new Date(h.created * 1000).toLocaleTimeString();
    const what = (ANSWER_TEXT[h.answer] || h.answer) + (h.repeat ? " (repeat)" : "");
    li.textContent = `#${h.query_id} ${what} · ${h.annotator}`;
    return li;
  });
  $("history").replaceChildren(...items);
  if (!shown) renderIdle();
}

/** The stage when no pair is held: say exactly why, from the server's `idle` state. */
function renderIdle() {
  const s = lastState;
  const title = $("empty-title");
  const detail = $("empty-detail");
  let kind = "loading";
  let head = "loading…";
  let more = "";
  if (offline) {
    kind = "offline";
    head = "The viewer server has stopped.";
    more = "Every label you gave is saved. If training is still meant to run, restart it (or pbrl-label RUN_DIR) and reload this page.";
  } else if (!named()) {
    kind = "who";
    head = "Who is labelling?";
  } else if (s) {
    const idle = s.idle;
    const tr = s.trainer;
    kind = idle.kind;
    if (kind === "finished") {
      head = `Training has finished. Thank you: ${fmt(s.counts.labelled)} queries labelled.`;
      const notes = [];
      if (tr.unused_labels) notes.push(`${fmt(tr.unused_labels)} labels arrived after the last reward update and were not used`);
      if (tr.unlabelled) notes.push(`${fmt(tr.unlabelled)} queries were left unlabelled`);
      more = notes.length ? `${notes.join("; ")}.` : "Every label was used. You can close this page.";
    } else if (kind === "all_done") {
      head = `All done: every one of the ${fmt(s.budget)} queries is labelled.`;
      more = tr.step !== null && tr.total_steps ? `The agent trains on without you until step ${fmt(tr.total_steps)} ` +
        `(now at ${fmt(tr.step)}). You can close this page.` : "You can close this page.";
    } else if (kind === "rendering") {
      head = `Rendering the clips of ${fmt(idle.rendering)} ${idle.rendering === 1 ? "query" : "queries"}…`;
      more = "the next pair appears as soon as its clips are written";
    } else if (kind === "ready") {
      head = "Loading the next pair…";
    } else if (kind === "no_trainer") {
      head = tr.step === null || tr.step === undefined ? "Waiting for the trainer to start…" :
        "The trainer is not running.";
      more = "Queries appear here when it asks; labels you give are kept and used when it runs.";
    } else if (kind === "next_round") {
      const at = idle.next_round_step;
      if (at === null || at === undefined) head = "Waiting for the agent's next round.";
      else if (idle.step !== null && at <= idle.step) {
        head = "The agent's next round is due: it waits for a training episode long enough to cut clips from.";
      } else head = `Waiting for the agent's next round at step ${fmt(at)}.`;
      more = `The agent is at step ${fmt(idle.step)}` + (idle.total_steps ? ` of ${fmt(idle.total_steps)}` : "") +
        "; new pairs appear here by themselves.";
    }
  }
  document.body.dataset.idle = kind;
  if (title.textContent !== head) title.textContent = head;
  if (detail.textContent !== more) detail.textContent = more;
}

function named() {
  return $("annotator").value.trim() !== "";
}

let polling = null;

function pollState() {
  if (polling) return polling;
  polling = api(`/api/state?${new URLSearchParams({ annotator: annotator() })}`)
    .then((s) => {
      lastState = s;
      setOffline(false);
      renderState(s);
    })
    .catch((err) => {
      if (err.status !== 0) $("progress-text").textContent = err.message;
    })
    .finally(() => { polling = null; });
  return polling;
}

/** The server stopped (or came back): answers are refused on the page, not lost in the network. */
function setOffline(value) {
  if (offline === value) return;
  offline = value;
  document.body.classList.toggle("offline", value);
  document.querySelectorAll("#answers button, #undo").forEach((b) => { b.disabled = value; });
  if (value) {
    showMessage("the viewer server has stopped: your labels so far are saved; nothing more can be labelled here");
    $("progress-text").textContent = "server stopped";
  } else {
    clearMessageIf("error");
  }
  if (!shown) renderIdle();
}

async function openStats() {
  const dlg = $("stats");
  const body = $("stats-body");
  body.textContent = "…";
  dlg.showModal();
  try {
    body.replaceChildren(...statsTables(await api("/api/stats")));
  } catch (err) {
    body.textContent = err.message;
  }
}

function table(head, rows) {
  const t = document.createElement("table");
  const tr = document.createElement("tr");
  head.forEach((h) => { const th = document.createElement("th"); th.textContent = h; tr.append(th); });
  t.append(tr);
  for (const row of rows) {
    const r = document.createElement("tr");
    row.forEach((cell) => { const td = document.createElement("td"); td.textContent = cell; r.append(td); });
    t.append(r);
  }
  return t;
}

const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(100 * x)} %`);
const num = (x) => (x === null || x === undefined ? "–" : x.toFixed(2));

function statsTables(st) {
  const people = Object.entries(st.annotators);
  if (!people.length) {
    const p = document.createElement("p");
    p.textContent = "no labels yet";
    return [p];
  }
  const a = table(["annotator", "labels", "repeats", "self-consistency"],
    people.map(([name, d]) => [name, fmt(d.labels), fmt(d.repeats), `${pct(d.self_consistency)} (${d.self_pairs})`]));
  const b = st.agreement.length
    ? table(["annotators", "shared", "agreement", "Cohen's κ"],
      st.agreement.map((g) => [g.annotators.join(" · "), fmt(g.pairs), pct(g.agreement), num(g.kappa)]))
    : Object.assign(document.createElement("p"), { textContent: "no query labelled by two annotators yet" });
  const note = Object.assign(document.createElement("p"), {
    className: "note",
    textContent: "Self-consistency: a repeat (sides swapped) against the same person's first answer. " +
      "Agreement: between two people on the same query; κ corrects it for chance.",
  });
  return [a, b, note];
}

// ----- animation frame: sync, scrub bar, clock text ---------------------------------------------

function frameLoop() {
  clock.check();
  const m = clock.master;
  if (m) {
    if (!scrubbing) $("scrub").value = String(m.currentTime);
    const frame = Math.min(clock.frames, Math.floor(m.currentTime * clock.fps + 1e-3) + 1);
    $("clock").textContent = `${m.currentTime.toFixed(2)} s · frame ${frame} / ${clock.frames}`;
    $("play").textContent = clock.playing ? "pause" : "play";
  }
  requestAnimationFrame(frameLoop);
}

// ----- hooks for tests and the console -----------------------------------------------------------

window.pbrl = {
  state() {
    const q = shown ? shown.query : null;
    return {
      queryId: q ? q.id : null, k: q ? q.k : null, order: q ? q.order.slice() : null, repeat: q ? q.repeat : null,
      held: queue.items.map((h) => h.query.id), ranking: ranking.slice(), playing: clock.playing && !clock.busy,
      times: clock.videos.map((v) => v.currentTime), rate: clock.rate, restarts: clock.restarts,
      resyncs: clock.resyncs, labelsSent, undos, submitting, offline, annotator: annotator(),
      phase: document.body.dataset.phase, idle: document.body.dataset.idle || null,
      idleText: $("empty").hidden ? null : $("empty").textContent.trim(),
      message: $("message").hidden ? null : $("message").textContent, server: lastState,
    };
  },
  clock, queue, answer, undo, pick, replay, setSpeed,
};

bindControls();
document.addEventListener("keydown", onKey);
document.addEventListener("click", (e) => { // after the browser blocked autoplay, any click starts it
  const blocked = $("message").classList.contains("click");
  if (shown && blocked && !clock.playing && !e.target.closest("button")) clock.start(0);
});
requestAnimationFrame(frameLoop);
if (!named()) $("who").showModal();
pollState();
fill();
setInterval(() => {
  pollState();
  if (queue.items.length < queue.depth && !submitting) fill();
}, 1000);
