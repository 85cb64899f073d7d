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

const clock = new Clock();
const held = []; // prepared queries leased to this page; held[0] is on screen, the rest preload
let shown; // the item on screen: null shows the "rendering" notice, undefined before the first display()
let ranking = []; // K-way: screen positions picked so far, best first
let submitting = false;
let labelsSent = 0;
let undos = 0;
let nextChain = Promise.resolve(); // /api/next calls run one at a time, so `exclude` is always complete
let lastState = null;
let messageTimer = null;

function annotator() {
  const name = $("annotator").value.trim();
  return name || "anonymous";
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

/** Video elements (already loading, in the hidden box) for one query from /api/next. */
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

/** Lease one more query (serialised with every other /api/next call); inserted at the front or the back. */
function leaseNext(front = false) {
  const job = nextChain.then(async () => {
    const exclude = held.map((h) => h.query.id).join(",");
    const params = new URLSearchParams({ annotator: annotator() });
    if (exclude) params.set("exclude", exclude);
    const data = await api(`/api/next?${params}`);
    if (!data.query || held.some((h) => h.query.id === data.query.id)) return null;
    const item = prepare(data.query);
    if (front) held.unshift(item); else held.push(item);
    return item;
  });
  nextChain = job.catch(() => null);
  return job;
}

let filling = null;

/** Keep the query on screen and the next one leased and loading. */
function fill() {
  if (filling) return filling;
  filling = (async () => {
    try {
      while (held.length < 2) {
        const item = await leaseNext(false);
        if (!item) break;
        if (held[0] === item) display();
      }
    } catch (err) {
      showMessage(err.message);
    } finally {
      filling = null;
      if (!shown) display();
    }
  })();
  return filling;
}

/** Put held[0] on screen (or the "rendering" notice when nothing is held). */
function display() {
  const item = held[0] || null;
  if (item === shown) return;
  if (shown) {
    clock.detach();
    if (held.includes(shown)) $("preload").append(...shown.tiles); // demoted by an undo: keep it loaded
    else release(shown);
  }
  shown = item;
  ranking = [];
  const stage = $("stage");
  document.body.dataset.queryId = item ? String(item.query.id) : "";
  if (!item) {
    document.body.dataset.phase = "empty";
    $("empty").hidden = false;
    stage.hidden = true;
    return;
  }
  $("empty").hidden = true;
  stage.hidden = false;
  const k = item.query.k;
  stage.className = `stage k${k}`;
  stage.style.setProperty("--cols", String(k === 2 ? 2 : k <= 3 ? k : Math.ceil(Math.sqrt(k))));
  stage.replaceChildren(...item.tiles);
  document.body.classList.toggle("mode-rank", k > 2);
  document.body.classList.toggle("mode-pair", k <= 2);
  $("rank-keys").textContent = `1…${k}`;
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
    if (err.status === 409 && err.field === "query_id") { // labelled elsewhere meanwhile: nothing to keep
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
  const i = held.indexOf(item);
  if (i >= 0) held.splice(i, 1);
  display();
  fill();
  pollState();
}

async function undo() {
  if (submitting) return;
  if (shown && shown.query.k > 2 && ranking.length) { // a partial ranking: take back the last pick
    ranking.pop();
    renderRanking();
    return;
  }
  submitting = true;
  try {
    const res = await api("/api/undo", { annotator: annotator() });
    undos += 1;
    let item = held.find((h) => h.query.id === res.query_id);
    if (item) {
      held.splice(held.indexOf(item), 1);
      held.unshift(item);
    } else {
      item = await leaseNext(true);
    }
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
  name.value = localStorage.getItem("pbrl.annotator") || "anonymous";
  name.addEventListener("change", () => {
    name.value = annotator();
    localStorage.setItem("pbrl.annotator", name.value);
  });
  name.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === "Escape") name.blur(); });

  $("stats-button").addEventListener("click", (e) => { e.currentTarget.blur(); openStats(); });
  $("stats-close").addEventListener("click", () => $("stats").close());
}

function onKey(e) {
  const t = e.target;
  if (t && (t.isContentEditable || t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "range"))) return;
  if (e.ctrlKey || e.metaKey || e.altKey || $("stats").open) return;
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
  $("progress-text").textContent = `${fmt(c.labelled)}${budget} labelled · ${fmt(c.ready)} ready` +
    (c.rendering ? ` · ${fmt(c.rendering)} rendering` : "") + (c.failed ? ` · ${fmt(c.failed)} failed` : "");
  $("progress-fill").style.width = s.budget ? `${Math.min(100, (100 * c.labelled) / s.budget)}%` : "0%";
  $("rate").textContent = `${s.labels_per_minute} labels/min`;
  const tr = s.trainer;
  let trainer;
  if (tr.done) trainer = "training done";
  else if (tr.step === null || tr.step === undefined) trainer = "trainer not started";
  else {
    trainer = `step ${fmt(tr.step)}` + (tr.total_steps ? ` / ${fmt(tr.total_steps)}` : "") +
      (tr.alive ? "" : " (no heartbeat)");
  }
  $("trainer").textContent = trainer;
  $("waiting-banner").hidden = !tr.waiting;
  $("waiting-time").textContent = tr.waiting && tr.waiting_s !== null ? ` · ${Math.round(tr.waiting_s)} s` : "";
  document.body.classList.toggle("agent-waiting", Boolean(tr.waiting));
  const items = s.history.map((h) => {
    const li = document.createElement("li");
    li.className = h.undone ? "undone" : "";
    li.title = new Date(h.created * 1000).toLocaleTimeString();
    const what = (ANSWER_TEXT[h.answer] || h.answer) + (h.repeat ? " (repeat)" : "");
    li.textContent = `#${h.query_id} ${what} · ${h.annotator}`;
    return li;
  });
  $("history").replaceChildren(...items);
}

let polling = null;

function pollState() {
  if (polling) return polling;
  polling = api(`/api/state?${new URLSearchParams({ annotator: annotator() })}`)
    .then((s) => {
      lastState = s;
      renderState(s);
      document.body.classList.remove("offline");
    })
    .catch((err) => {
      $("progress-text").textContent = err.message;
      document.body.classList.add("offline");
    })
    .finally(() => { polling = null; });
  return polling;
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
      held: held.map((h) => h.query.id), ranking: ranking.slice(), playing: clock.playing && !clock.busy,
      times: clock.videos.map((v) => v.currentTime), rate: clock.rate, restarts: clock.restarts,
      resyncs: clock.resyncs, labelsSent, undos, submitting, annotator: annotator(),
      phase: document.body.dataset.phase, message: $("message").hidden ? null : $("message").textContent,
      server: lastState,
    };
  },
  clock, answer, undo, pick, replay, setSpeed,
};

bindControls();
document.addEventListener("keydown", onKey);
document.addEventListener("click", (e) => { // after the browser blocked autoplay, any click starts it
  const blocked = $("message").classList.contains("click");
  if (shown && blocked && !clock.playing && !e.target.closest("button")) clock.start(0);
});
requestAnimationFrame(frameLoop);
pollState();
fill();
setInterval(() => {
  pollState();
  if (held.length < 2 && !submitting) fill();
}, 1000);
