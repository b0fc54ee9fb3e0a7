// The visionzoo page: one photo in, every loaded model's answer out. Plain JS, no build, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "visionzoo-api-key";
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
const loaded = { classify: [], detect: [], segment: [], faces: [], caption: [] };
let hasIndex = false;
let drawings = [];   // what the overlay shows: {boxes: [...], masks: [...]} per answer

function authHeaders() {
  const key = localStorage.getItem(KEY);
  return key ? { "X-API-Key": key } : {};
}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  let body;
  try { body = await res.json(); } catch { body = { error: res.statusText }; }
  if (!res.ok) {
    const err = new Error(body.error || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function init() {
  try {
    const info = await api("/v1/models");
    $("key-box").hidden = true;
    for (const m of info.models) {
      const task = (m.endpoints[0] || "").split("/")[2];
      if (task in loaded) loaded[task].push(m.name);
    }
    hasIndex = Boolean(info.index);
    const parts = info.models.map((m) => `${m.name} (${m.task})`);
    if (hasIndex) parts.push(`index of ${info.index.count} images`);
    $("status").textContent = parts.join(" · ");
  } catch (err) {
    if (err.status === 401) {
      $("key-box").hidden = false;
      $("status").textContent = "this server needs an API key";
    } else {
      showError(`cannot reach the server: ${err.message}`);
    }
  }
}

function form(file, extra = {}) {
  const data = new FormData();
  data.append("file", file);
  for (const [k, v] of Object.entries(extra)) data.append(k, v);
  return { method: "POST", body: data };
}

function renderLabels(answer) {
  $("model-name").textContent = answer.model;
  const list = $("labels");
  list.replaceChildren();
  for (const p of answer.predictions) {
    const li = document.createElement("li");
    const row = document.createElement("div");
    row.className = "label-row";
    const name = document.createElement("span");
    name.textContent = p.label;
    const pct = document.createElement("span");
    pct.textContent = `${(100 * p.probability).toFixed(1)}%`;
    row.append(name, pct);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0.5, 100 * p.probability)}%`;
    bar.append(fill);
    li.append(row, bar);
    list.append(li);
  }
  $("labels-panel").hidden = false;
}

async function renderSimilar(answer) {
  const grid = $("similar");
  grid.replaceChildren();
  $("index-name").textContent = `(${answer.index.count} images)`;
  for (const hit of answer.neighbours) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.alt = hit.path;
    const cap = document.createElement("figcaption");
    cap.textContent = `${hit.path.split(/[\\/]/).pop()} · ${hit.score.toFixed(3)}`;
    cap.title = hit.path;
    fig.append(img, cap);
    grid.append(fig);
    // Fetched (not <img src>) so the API key header goes along.
    fetch(hit.thumbnail, { headers: authHeaders() })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => { if (blob) img.src = URL.createObjectURL(blob); });
  }
  $("similar-panel").hidden = false;
}

// Anything in an answer that has a box: detections, faces (with identity), and so on.
function collectBoxes(value, out = []) {
  if (Array.isArray(value)) value.forEach((v) => collectBoxes(v, out));
  else if (value && typeof value === "object") {
    const box = value.box || value.bbox;
    if (Array.isArray(box) && box.length === 4) out.push(value);
    else Object.values(value).forEach((v) => collectBoxes(v, out));
  }
  return out;
}

// COCO compressed RLE ({size: [h, w], counts: "..."}, what detection runs write) -> (h*w) 0/1, column-major.
function decodeRle(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  for (let p = 0; p < s.length;) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = s.charCodeAt(p++) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const bits = new Uint8Array(h * w);
  let i = 0;
  counts.forEach((n, j) => { if (j % 2) bits.fill(1, i, i + n); i += n; });
  return { h, w, bits };
}

function isRle(v) {
  return v && typeof v === "object" && typeof v.counts === "string" && Array.isArray(v.size) && v.size.length === 2;
}

// Masks come back as PNG data URLs (whole image, or one per detection box) or as COCO RLE.
function collectMasks(value, out = [], box = null) {
  if (typeof value === "string" && value.startsWith("data:image/")) out.push({ url: value, box });
  else if (isRle(value)) out.push({ rle: value, box: null });
  else if (Array.isArray(value)) value.forEach((v) => collectMasks(v, out, box));
  else if (value && typeof value === "object") {
    const own = Array.isArray(value.box) && value.box.length === 4 ? value.box : box;
    Object.values(value).forEach((v) => collectMasks(v, out, own));
  }
  return out;
}

function boxText(obj) {
  const name = obj.identity ?? obj.name ?? obj.label ?? "";
  const score = typeof obj.score === "number" ? ` ${obj.score.toFixed(2)}` : "";
  return `${name}${score}`.trim();
}

function renderTask(task, answer) {
  const boxes = collectBoxes(answer);
  const masks = collectMasks(answer);
  drawings.push({ boxes, masks });
  const found = $("found");
  if (typeof answer.caption === "string") $("caption").textContent = answer.caption;
  const li = document.createElement("li");
  const named = boxes.map(boxText).filter(Boolean);
  li.textContent = `${task} (${answer.model}): ` + (boxes.length ? `${boxes.length} found${named.length ? ": " + named.join(", ") : ""}`
    : answer.caption ?? (masks.length ? "mask drawn" : "nothing found"));
  found.append(li);
  $("found-panel").hidden = false;
  redraw();
}

function loadImage(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

// A mask as a canvas: its colour, half transparent, where the mask is on; clear elsewhere.
async function tinted(mask, colour) {
  const c = document.createElement("canvas");
  const ctx = c.getContext("2d");
  let on;
  if (mask.rle) {
    const { h, w, bits } = decodeRle(mask.rle);
    c.width = w; c.height = h;
    on = (x, y) => bits[x * h + y];
  } else {
    const img = await loadImage(mask.url);
    if (!img) return null;
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    ctx.drawImage(img, 0, 0);
    const src = ctx.getImageData(0, 0, c.width, c.height).data;
    on = (x, y) => src[4 * (y * c.width + x)] > 0;
  }
  const out = ctx.createImageData(c.width, c.height);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      if (!on(x, y)) continue;
      const i = 4 * (y * c.width + x);
      out.data[i] = r; out.data[i + 1] = g; out.data[i + 2] = b; out.data[i + 3] = 110;
    }
  }
  ctx.putImageData(out, 0, 0);
  return c;
}

async function redraw() {
  const photo = $("photo");
  const canvas = $("overlay");
  if (!photo.naturalWidth) return;
  canvas.width = photo.clientWidth;
  canvas.height = photo.clientHeight;
  const s = photo.clientWidth / photo.naturalWidth;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let colour = 0;
  for (const { masks } of drawings) {
    for (const m of masks) {
      const tint = await tinted(m, COLOURS[colour++ % COLOURS.length]);
      if (!tint) continue;
      if (m.box && (tint.width !== photo.naturalWidth || tint.height !== photo.naturalHeight)) {
        const [x1, y1, x2, y2] = m.box;
        ctx.drawImage(tint, x1 * s, y1 * s, (x2 - x1) * s, (y2 - y1) * s);
      } else {
        ctx.drawImage(tint, 0, 0, canvas.width, canvas.height);
      }
    }
  }
  colour = 0;
  ctx.font = "13px system-ui, sans-serif";
  ctx.lineWidth = 2;
  for (const { boxes } of drawings) {
    for (const b of boxes) {
      const [x1, y1, x2, y2] = b.box || b.bbox;
      const c = COLOURS[colour++ % COLOURS.length];
      ctx.strokeStyle = c;
      ctx.strokeRect(x1 * s, y1 * s, (x2 - x1) * s, (y2 - y1) * s);
      const text = boxText(b);
      if (text) {
        const w = ctx.measureText(text).width + 6;
        ctx.fillStyle = c;
        ctx.fillRect(x1 * s, Math.max(0, y1 * s - 17), w, 17);
        ctx.fillStyle = "#fff";
        ctx.fillText(text, x1 * s + 3, Math.max(13, y1 * s - 4));
      }
      const points = Array.isArray(b.landmarks) ? b.landmarks : [];
      ctx.fillStyle = c;
      for (const p of points) {
        if (Array.isArray(p) && p.length >= 2) ctx.fillRect(p[0] * s - 1.5, p[1] * s - 1.5, 3, 3);
      }
    }
  }
}

const VIDEO_NAME = /\.(mp4|m4v|mkv|avi|mov|webm|mpe?g|ts|wmv|flv|3gp|ogv)$/i;

function isVideo(file) {
  return (file.type || "").startsWith("video/") || VIDEO_NAME.test(file.name || "");
}

// One line about a whole video: frames looked at, and its tracks, people or scenes.
function videoSummary(task, answer) {
  const s = answer.summary || {};
  const parts = [`${answer.frames.length} frame(s)`];
  if (s.tracks) parts.push(`${s.tracks.length} track(s): ` + s.tracks.map((t) => `#${t.track_id} ${t.label} ${t.first_seen.toFixed(1)}-${t.last_seen.toFixed(1)} s`).join(", "));
  if (s.timeline) parts.push(Object.entries(s.timeline).map(([who, spans]) => `${who} ${spans.map(([a, b]) => `${a.toFixed(1)}-${b.toFixed(1)} s`).join(", ")}`).join("; "));
  if (s.scenes) parts.push(s.scenes.map((c) => `${c.start.toFixed(1)} s: ${c.caption}`).join(" · "));
  if (s.error) parts.push(`stopped early: ${s.error}`);
  return `${task} (${answer.model}): ${parts.join("; ")}`;
}

// A video goes to the task routes only; the first annotated video that comes back is played.
async function handleVideo(file) {
  const movie = $("movie");
  $("photo").closest(".stage").style.display = "none";
  movie.hidden = false;
  movie.src = URL.createObjectURL(file);
  $("figure").hidden = false;
  const raw = {};
  let shown = false;
  const jobs = ["detect", "segment", "faces", "caption"].filter((task) => loaded[task].length).map((task) =>
    api(`/v1/${task}`, form(file)).then((answer) => {
      raw[task] = { ...answer, video: answer.video ? "(the annotated video, played above)" : null };
      const li = document.createElement("li");
      li.textContent = videoSummary(task, answer);
      $("found").append(li);
      $("found-panel").hidden = false;
      if (answer.video && !shown) {
        shown = true;
        movie.src = answer.video;
        movie.play().catch(() => {});
      }
    }).catch((err) => { raw[task] = { error: err.message }; showError(`${task}: ${err.message}`); }));
  if (!jobs.length) showError("videos are answered by task models (detect, segment, faces, caption); none is loaded");
  await Promise.all(jobs);
  $("raw").textContent = JSON.stringify(raw, null, 2);
  $("raw-panel").hidden = false;
}

async function handleFile(file) {
  if (!file) return;
  showError("");
  drawings = [];
  $("found").replaceChildren();
  $("caption").textContent = "";
  for (const id of ["labels-panel", "found-panel", "similar-panel"]) $(id).hidden = true;
  if (isVideo(file)) return handleVideo(file);
  $("movie").hidden = true;
  $("movie").removeAttribute("src");
  $("photo").closest(".stage").style.display = "";
  const photo = $("photo");
  photo.onload = redraw;
  photo.src = URL.createObjectURL(file);
  $("figure").hidden = false;

  const raw = {};
  const jobs = [];
  const ask = (name, path, extra, render) => jobs.push(
    api(path, form(file, extra))
      .then((answer) => { raw[name] = answer; return render(answer); })
      .catch((err) => { raw[name] = { error: err.message }; showError(`${name}: ${err.message}`); }));
  if (loaded.classify.length) ask("classify", "/v1/classify", { k: 5 }, renderLabels);
  if (hasIndex) ask("search", "/v1/search", { k: 8 }, renderSimilar);
  for (const task of ["detect", "segment", "faces", "caption"]) {
    if (loaded[task].length) ask(task, `/v1/${task}`, {}, (answer) => renderTask(task, answer));
  }
  await Promise.all(jobs);
  $("raw").textContent = JSON.stringify(raw, null, 2);
  $("raw-panel").hidden = false;
}

const drop = $("drop");
drop.addEventListener("click", (e) => { if (e.target === drop || e.target.tagName === "P") $("file").click(); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  handleFile(e.dataTransfer.files[0]);
});
$("file").addEventListener("change", (e) => handleFile(e.target.files[0]));
$("key-box").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(KEY, $("key").value.trim());
  init();
});
window.addEventListener("resize", redraw);
init();
