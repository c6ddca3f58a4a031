// The cleancut page: photos in (drop, pick, paste), cut-outs out, one after another.
// "In your browser" runs the server's default model in a worker, as its recipe says (nothing is uploaded); "On the server" posts the
// photo to /api/remove. Either way the result is composed, framed (background, crop,
// e-commerce canvas: framing.js) and encoded here, on a canvas, so it can be changed after
// the cut-out. The quality mode runs in the browser too (the server's passes, the server's
// mask); clean edge colours are asked of the server only (its decontaminate option).
// Short clips go to the server only (/api/remove-video: a job whose frames done are polled
// for the progress bar); the result plays in a <video> and downloads as it came.

import { BrowserEngine } from "./browser-engine.js";
import { ECOMMERCE, frame } from "./framing.js";
import { compose } from "./imaging.js";
import { removeClipOnServer, removeOnServer, retrying } from "./server-engine.js";

const $ = (selector, root = document) => root.querySelector(selector);
const MB = 1024 * 1024;

const ui = {
  modeInputs: [...document.querySelectorAll('input[name="mode"]')],
  bgInputs: [...document.querySelectorAll('input[name="bg"]')],
  color: $("#bg-color"),
  colorChip: $("#color-chip"),
  bgImage: $("#bg-image"),
  imageChip: $("#image-chip"),
  crop: $("#crop"),
  ecommerce: $("#ecommerce"),
  quality: $("#quality"),
  decontaminate: $("#decontaminate"),
  framingNote: $("#framing-note"),
  note: $("#engine-note"),
  drop: $("#drop"),
  file: $("#file"),
  jobs: $("#jobs"),
  status: $("#status"),
  template: $("#job-template"),
  version: $("#version"),
};

const state = {
  config: null,
  engine: null, // BrowserEngine, created on the first private photo
  queue: [],
  running: false,
  lastPassMs: null,
  bgImage: null, // ImageBitmap of the chosen background image
  bgImageFile: null, // ... and its file, sent along with a clip
  settled: false, // the server has loaded its model (or failed to): photos may start
};
let markSettled;
// Resolved once /api/config says the server is past loading (or cannot be reached): jobs
// added before wait for it instead of failing on a 503 "still loading".
const settled = new Promise((resolve) => {
  markSettled = () => {
    state.settled = true;
    ui.drop.removeAttribute("aria-busy");
    resolve();
  };
});

const CLIP_NAME = /\.(mp4|m4v|mov|webm|mkv|avi|ogv)$/i;

function isClip(file) {
  return (file.type || "").startsWith("video/") || (!file.type && CLIP_NAME.test(file.name || ""));
}

// ------------------------------------------------------------------ helpers

function announce(text) {
  ui.status.textContent = text;
}

function mode() {
  return ui.modeInputs.find((i) => i.checked).value;
}

function background() {
  const choice = ui.bgInputs.find((i) => i.checked).value;
  if (choice === "white") return "#ffffff";
  if (choice === "color") return ui.color.value;
  if (choice === "blur") return "blur";
  if (choice === "image") return state.bgImage; // null (transparent) until one is chosen
  return null;
}

/** What framing.js is asked for: the e-commerce preset, or the chosen background and crop. */
function framingOptions() {
  if (ui.ecommerce.checked) return { ...ECOMMERCE };
  return { background: background(), crop: ui.crop.checked, margin: 0.05 };
}

/** The server's quality mode and edge colours (the browser runs the mode, not the colours). */
function serverParams() {
  return { mode: ui.quality.value, decontaminate: ui.decontaminate.checked ? "blur_fusion" : "none" };
}

function describeFraming() {
  const inBrowser = mode() === "browser";
  ui.decontaminate.disabled = inBrowser;
  for (const input of [...ui.bgInputs, ui.color, ui.crop]) input.disabled = ui.ecommerce.checked;
  let text = "";
  const best = state.config?.browser?.recipe?.modes?.best;
  if (ui.quality.value === "best" && best) {
    // the default model's own passes: IS-Net's four (1024² and 768², mirrored), BiRefNet's two
    const sizes = [...new Set(best.map((p) => `${p.width}²`))].join(" and ");
    text = `Best: ${best.length} network passes (${sizes}, each also mirrored) averaged.`;
  } else if (ui.quality.value === "best") text = "Best: several network passes averaged.";
  else if (ui.quality.value === "fast") text = "Fast: one smaller network pass, a little less accurate.";
  if (inBrowser) text = `${text} In the browser: the server's own mask for this mode; clean edge colours run on the server.`.trim();
  if (ui.ecommerce.checked) text = `${text} The e-commerce preset sets the background and the crop.`.trim();
  ui.framingNote.textContent = text;
}

function formatMB(bytes) {
  return (bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0);
}

function formatSeconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function stem(name) {
  const base = (name || "photo").replace(/\.[^.]+$/, "");
  return base.replace(/[^\w.-]+/g, "_").slice(0, 100) || "photo";
}

function setNote(text, warn = false) {
  ui.note.textContent = text;
  ui.note.classList.toggle("warn", warn);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ------------------------------------------------------------------ configuration

async function loadConfig() {
  ui.drop.setAttribute("aria-busy", "true");
  for (;;) {
    try {
      const response = await fetch("/api/config", { cache: "no-cache" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      state.config = await response.json();
    } catch (err) {
      setNote(`Cannot reach the server (${err.message}).`, true);
      markSettled();
      return;
    }
    ui.version.textContent = `cleancut ${state.config.version}`;
    const loading = state.config.server.state === "loading";
    if (state.config.browser.state !== "pending" && !loading) break;
    // Not ready yet (just started): say so, and hold photos added meanwhile until it is.
    setNote(
      loading
        ? "The server is loading the model… photos you add now start as soon as it is ready."
        : "The server is preparing the in-browser engine…",
    );
    await sleep(2000);
  }
  applyAvailability();
  markSettled();
}

function browserSupport() {
  if (typeof WebAssembly !== "object") return "this browser has no WebAssembly";
  if (typeof Worker === "undefined") return "this browser has no Web Workers";
  return null;
}

function applyAvailability() {
  const browser = state.config.browser;
  const missing = browser.state !== "ready" ? browser.detail || "not offered by this server" : browserSupport();
  const privateInput = ui.modeInputs.find((i) => i.value === "browser");
  if (missing) {
    privateInput.disabled = true;
    ui.modeInputs.find((i) => i.value === "server").checked = true;
    setNote(`In-browser mode is unavailable (${missing}); photos are processed on the server.`, true);
    return;
  }
  describeBrowserEngine();
}

function describeBrowserEngine(info) {
  if (mode() !== "browser") {
    const limits = state.config ? state.config.limits : { max_upload_bytes: 0, max_video_bytes: 0, max_video_seconds: 0 };
    setNote(
      `Photos up to ${formatMB(limits.max_upload_bytes)} MB, and clips up to ${formatMB(limits.max_video_bytes)} MB ` +
        `and ${limits.max_video_seconds} s, are uploaded, cut out, and not kept (a clip's result is deleted once downloaded).`,
    );
    return;
  }
  const model = state.config.browser.model;
  if (info) {
    const where = info.backend === "webgpu" ? "WebGPU" : `WebAssembly, ${info.threads} thread${info.threads === 1 ? "" : "s"}`;
    const kept = info.persistent ? "; model kept in this browser for offline use" : "";
    const isolation = info.isolated ? "" : " — open this page over HTTPS or on localhost to use every core";
    setNote(`Running on ${where}${kept}${isolation}.`, !info.isolated);
    return;
  }
  setNote(`The model (${formatMB(model.size)} MB) is downloaded once from this server and kept in this browser.`);
}

// ------------------------------------------------------------------ jobs

class Job {
  constructor(file) {
    this.file = file;
    this.clip = isClip(file);
    this.name = file.name || "pasted image";
    const node = ui.template.content.firstElementChild.cloneNode(true);
    this.el = node;
    node.job = this; // reachable from the list, for the background switch
    this.label = $(".stage-label", node);
    this.detail = $(".stage-detail", node);
    this.bar = $("progress", node);
    this.error = $(".job-error", node);
    this.figure = $(".compare", node);
    this.viewer = $(".viewer", node);
    this.before = $(".before", node);
    this.afterWrap = $(".after", node);
    this.canvas = $(".after canvas", node);
    this.slider = $(".slider", node);
    this.actions = $(".job-actions", node);
    this.link = $(".download", node);
    this.doneText = $(".job-done", node);
    this.clipView = $(".clip-view", node);
    this.video = $(".clip-view video", node);
    this.cancel = null; // AbortController of a clip's job on the server
    this.cutout = null; // canvas with the transparent cut-out
    this.photo = null; // canvas with the photo, for the blurred background
    this.framed = null; // the cut-out as shown and downloaded (background, crop)
    this.url = null;
    this.timer = null;
    $(".job-name", node).textContent = this.name;
    $(".job-meta", node).textContent = `${formatMB(file.size)} MB`;
    $(".job-remove", node).addEventListener("click", () => this.remove());
    this.slider.addEventListener("input", () => this.viewer.style.setProperty("--split", `${this.slider.value}%`));
    this.stage("Waiting", "");
  }

  stage(label, detail, fraction = null) {
    this.label.textContent = label;
    this.detail.textContent = detail;
    if (fraction === null) this.bar.removeAttribute("value");
    else this.bar.value = Math.max(0, Math.min(1, fraction));
    this.bar.setAttribute("aria-label", `${this.name}: ${label}`);
  }

  startClock(label, expectedMs) {
    this.stopClock();
    const t0 = performance.now();
    const tick = () => {
      const elapsed = performance.now() - t0;
      // After one pass the duration is known: show a bar that tracks it (never reaching the end).
      const fraction = expectedMs ? Math.min(0.95, elapsed / expectedMs) : null;
      this.stage(label, formatSeconds(elapsed), fraction);
    };
    tick();
    this.timer = setInterval(tick, 250);
  }

  stopClock() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  fail(message) {
    this.stopClock();
    this.el.classList.add("failed");
    this.stage("Failed", "", 0);
    this.error.textContent = message;
    this.error.hidden = false;
    announce(`${this.name}: failed. ${message}`);
  }

  remove() {
    this.stopClock();
    this.cancel?.abort(); // a clip still being cut out is stopped on the server
    state.queue = state.queue.filter((j) => j !== this);
    if (this.url) URL.revokeObjectURL(this.url);
    if (this.before.src) URL.revokeObjectURL(this.before.src);
    const next = this.el.nextElementSibling || this.el.previousElementSibling;
    this.el.remove();
    (next ? $(".job-remove", next) : ui.file).focus();
  }

  async showResult(cutoutCanvas, summary, photoCanvas = null) {
    this.cutout = cutoutCanvas;
    this.photo = photoCanvas;
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", `Cut-out of ${this.name}`);
    this.before.src = URL.createObjectURL(this.file);
    this.before.alt = `Original ${this.name}`;
    this.stopClock();
    await this.render();
    this.el.classList.add("done");
    this.figure.hidden = false;
    this.actions.hidden = false;
    this.doneText.textContent = summary;
    announce(`${this.name}: done. ${summary}. The download is ready.`);
  }

  /** A clip's cut-out: played on the checkerboard, downloaded as the server encoded it. */
  showClip(blob, filename, summary, transparent) {
    this.stopClock();
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(blob);
    const frame = this.clipView.querySelector(".clip-frame");
    this.video.addEventListener(
      "loadedmetadata",
      () => (frame.style.width = `min(100%, ${Math.max(360, this.video.videoWidth)}px)`),
      { once: true },
    );
    this.video.src = this.url;
    this.video.setAttribute("aria-label", `Cut-out of ${this.name}`);
    frame.classList.toggle("checker", transparent);
    this.link.href = this.url;
    this.link.download = filename;
    const ext = filename.split(".").pop().toLowerCase();
    const kind = { webm: "WebM", mp4: "MP4", mov: "MOV" }[ext] || ext.toUpperCase();
    this.link.textContent = `Download ${kind}`;
    this.link.setAttribute("aria-label", `Download the cut-out of ${this.name} as ${kind} (${formatMB(blob.size)} MB)`);
    this.stage("Done", "", 1);
    this.el.classList.add("done");
    this.clipView.hidden = false;
    this.actions.hidden = false;
    this.doneText.textContent = summary;
    announce(`${this.name}: done. ${summary}. The download is ready.`);
  }

  /** Frame the cut-out with the current settings, show it, and make the download. */
  async render() {
    const options = framingOptions();
    if (options.background === "blur" && !this.photo) this.photo = canvasFrom(await decode(this.file));
    const { canvas, changed } = frame(this.cutout, this.photo, options);
    this.framed = canvas;
    const { width, height } = canvas;
    this.viewer.style.aspectRatio = `${width} / ${height}`;
    // Fit the viewer (and its slider) to the screen height as well as the column width.
    this.figure.style.width = `min(100%, calc(62vh * ${width / height}))`;
    this.canvas.width = width;
    this.canvas.height = height;
    this.canvas.getContext("2d").drawImage(canvas, 0, 0);
    // Cropped or on a new canvas, the photo no longer lines up: the result is shown alone.
    this.viewer.classList.toggle("framed", changed);
    this.afterWrap.classList.toggle("checker", !options.background);
    await this.encode();
  }

  /** PNG of the framed cut-out. */
  async encode() {
    this.stage("Encoding", "PNG", null);
    const source = this.framed;
    const blob = await new Promise((resolve, reject) =>
      source.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the PNG"))), "image/png"),
    );
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(blob);
    this.link.href = this.url;
    this.link.download = `${stem(this.name)}.cutout.png`;
    this.link.setAttribute("aria-label", `Download the cut-out of ${this.name} as PNG (${formatMB(blob.size)} MB)`);
  }
}

// ------------------------------------------------------------------ decoding

async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image", premultiplyAlpha: "none" });
  } catch {
    throw new Error(
      "this browser cannot read this file as an image (HEIC and some RAW formats need the " +
        "“On the server” mode, or convert it to JPEG or PNG first)",
    );
  }
  const limit = state.config ? state.config.limits.max_pixels : Infinity;
  if (bitmap.width * bitmap.height > limit) {
    bitmap.close();
    throw new Error(
      `the image is ${bitmap.width}×${bitmap.height} = ${(bitmap.width * bitmap.height / 1e6).toFixed(1)} MP, ` +
        `over this page's limit of ${(limit / 1e6).toFixed(0)} MP`,
    );
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

function canvasFrom(imageData) {
  const canvas = document.createElement("canvas");
  canvas.width = imageData.width;
  canvas.height = imageData.height;
  canvas.getContext("2d").putImageData(imageData, 0, 0);
  return canvas;
}

// ------------------------------------------------------------------ the two modes

function browserProgress(job) {
  return (message) => {
    if (message.stage === "download") {
      const { loaded, total, fromNetwork } = message;
      const label = fromNetwork > 0 ? "Downloading the model" : "Reading the model from this browser";
      job.stage(label, `${formatMB(loaded)} / ${formatMB(total)} MB`, loaded / total);
    } else if (message.stage === "session") {
      job.startClock(`Preparing the network (${message.backend === "webgpu" ? "WebGPU" : "WebAssembly"})`);
    } else if (message.stage === "preprocess") {
      job.stopClock();
      job.stage("Preparing the photo", "", null);
    } else if (message.stage === "inference") {
      const label = message.passes > 1 ? `Inference, pass ${message.pass} of ${message.passes}` : "Inference";
      job.startClock(label, state.lastPassMs);
    } else if (message.stage === "postprocess") {
      job.stopClock();
      job.stage("Building the mask", "", null);
    }
  };
}

async function runInBrowser(job) {
  const t0 = performance.now();
  job.stage("Reading the photo", "", null);
  const image = await decode(job.file);
  if (!state.engine) {
    const c = state.config.browser;
    state.engine = new BrowserEngine({
      ort: c.ort,
      resources: c.resources,
      model: c.model,
      recipe: c.recipe,
      output: c.output,
      sizes: c.sizes,
      backend: forcedBackend(),
    });
  }
  const onProgress = browserProgress(job);
  let info;
  try {
    info = await state.engine.prepare(onProgress);
  } catch (err) {
    state.engine = null; // a fresh worker next time
    throw err;
  }
  describeBrowserEngine(info);
  const quality = ui.quality.value;
  const { mask, timings, passes } = await state.engine.segment(image, onProgress, quality);
  state.lastPassMs = timings.inference / passes;
  const cutout = new ImageData(compose(image.data, mask), image.width, image.height);
  const where = info.backend === "webgpu" ? "WebGPU" : `WebAssembly, ${info.threads} thread${info.threads === 1 ? "" : "s"}`;
  await job.showResult(
    canvasFrom(cutout),
    `${image.width}×${image.height} · done in ${formatSeconds(performance.now() - t0)} in your browser ` +
      `(${where}; ${quality} quality, inference ${formatSeconds(timings.inference)}` +
      `${passes > 1 ? ` in ${passes} passes` : ""})`,
    canvasFrom(image),
  );
}

async function runOnServer(job) {
  const t0 = performance.now();
  const limit = state.config.limits.max_upload_bytes;
  if (job.file.size > limit) {
    throw new Error(`the file is ${formatMB(job.file.size)} MB; this server accepts up to ${formatMB(limit)} MB`);
  }
  const onProgress = (p) => {
    if (p.stage === "upload") job.stage("Uploading", `${formatMB(p.loaded)} / ${formatMB(p.total)} MB`, p.loaded / p.total);
    else if (p.stage === "server") job.startClock("Cutting out on the server");
    else if (p.stage === "result") {
      job.stopClock();
      job.stage("Receiving the result", p.total ? `${formatMB(p.loaded)} / ${formatMB(p.total)} MB` : "", p.total ? p.loaded / p.total : null);
    }
  };
  const params = serverParams();
  const { blob } = await retrying(() => removeOnServer(job.file, onProgress, params), waitingFor(job));
  job.stopClock();
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none" });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  await job.showResult(canvas, `${canvas.width}×${canvas.height} · done in ${formatSeconds(performance.now() - t0)} on the server`);
}

/** What a job shows while the server asks it to come back later (503 with Retry-After). */
function waitingFor(job) {
  return (err, seconds) => {
    job.stopClock();
    const label = err.code === "not_ready" ? "Loading the model on the server…" : "The server is busy";
    job.stage(label, `trying again in ${seconds} s`, null);
  };
}

/** A clip's options: the background as the server draws it (a clip cannot be re-framed in
 * the page afterwards); transparent → WebM with alpha, any opaque background → MP4. */
function clipParams() {
  const params = { mode: ui.quality.value, decontaminate: ui.decontaminate.checked ? "blur_fusion" : "none" };
  let background = null;
  const choice = ui.ecommerce.checked ? "white" : ui.bgInputs.find((i) => i.checked).value;
  if (choice === "white") params.bg_color = "#ffffff";
  else if (choice === "color") params.bg_color = ui.color.value;
  else if (choice === "blur") params.background = "blur";
  else if (choice === "image" && state.bgImageFile) background = state.bgImageFile;
  params.format = params.bg_color || params.background || background ? "mp4" : "webm";
  return { params, background };
}

async function runClipOnServer(job) {
  const t0 = performance.now();
  const limits = state.config.limits;
  if (job.file.size > limits.max_video_bytes) {
    throw new Error(
      `the clip is ${formatMB(job.file.size)} MB; this server accepts clips up to ${formatMB(limits.max_video_bytes)} MB`,
    );
  }
  const { params, background } = clipParams();
  job.cancel = new AbortController();
  const { blob, job: result } = await removeClipOnServer(
    job.file,
    params,
    background,
    (p) => {
      if (p.stage === "upload") job.stage("Uploading", `${formatMB(p.loaded)} / ${formatMB(p.total)} MB`, p.loaded / p.total);
      else if (p.stage === "checking") job.stage("Checking the clip", "", null);
      else if (p.stage === "frames") {
        const { done, total } = p.job.frames;
        const speed = p.job.fps ? ` · ${p.job.fps.toFixed(1)} frames/s` : "";
        const eta = p.job.eta_s != null ? ` · ${Math.ceil(p.job.eta_s)} s left` : "";
        const label = p.job.state === "queued" ? "Waiting for the server" : "Cutting out frames";
        job.stage(label, `${done} / ${total} frames${speed}${eta}`, total ? done / total : null);
      } else if (p.stage === "result") {
        job.stage("Receiving the result", p.total ? `${formatMB(p.loaded)} / ${formatMB(p.total)} MB` : "", p.total ? p.loaded / p.total : null);
      }
    },
    job.cancel.signal,
    waitingFor(job),
  );
  job.cancel = null;
  const frames = result.frames.total;
  job.showClip(
    blob,
    result.result.filename,
    `${frames} frames · ${result.seconds.toFixed(1)} s of video · done in ${formatSeconds(performance.now() - t0)} on the server`,
    params.format === "webm",
  );
}

function forcedBackend() {
  const wanted = new URLSearchParams(location.search).get("backend");
  return wanted === "wasm" || wanted === "webgpu" ? wanted : "auto";
}

async function pump() {
  if (state.running) return;
  state.running = true;
  try {
    if (!state.settled) {
      for (const job of state.queue) job.stage("Waiting for the server", "it is still starting (loading the model)", null);
      await settled;
    }
    while (state.queue.length) {
      const job = state.queue.shift();
      if (!job.el.isConnected) continue;
      const where = mode();
      announce(`${job.name}: started ${where === "browser" ? "in your browser" : "on the server"}.`);
      try {
        if (!state.config) throw new Error("the page could not load its settings from the server");
        if (job.clip) await runClipOnServer(job);
        else if (where === "browser") await runInBrowser(job);
        else await runOnServer(job);
      } catch (err) {
        console.error(err);
        job.fail(err.message || String(err));
      }
    }
  } finally {
    state.running = false;
  }
}

function addFiles(files) {
  const list = [...files];
  for (const file of list) {
    const job = new Job(file);
    ui.jobs.append(job.el);
    if (job.clip) {
      if (mode() === "browser") {
        job.fail(
          "Clips are cut out on the server only; in your browser this page cuts out photos. " +
            "Choose “On the server” above, then add the clip again.",
        );
        continue;
      }
    } else if (file.type && !file.type.startsWith("image/")) {
      job.fail(`${file.type || "this file"} is not an image or a video clip`);
      continue;
    }
    state.queue.push(job);
  }
  if (list.length) announce(`${list.length} file${list.length === 1 ? "" : "s"} added.`);
  pump();
}

// ------------------------------------------------------------------ wiring

ui.file.addEventListener("change", () => {
  addFiles(ui.file.files);
  ui.file.value = ""; // choosing the same file again must fire change again
});

for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (e) => {
    if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
    e.preventDefault(); // a file dropped anywhere on the page must not navigate away from it
    ui.drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  document.addEventListener(type, (e) => {
    if (type === "dragleave" && e.relatedTarget) return;
    ui.drop.classList.remove("over");
  });
}
document.addEventListener("drop", (e) => {
  if (!e.dataTransfer?.files?.length) return;
  e.preventDefault();
  addFiles(e.dataTransfer.files);
});
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  if (files.length) {
    e.preventDefault();
    addFiles(files);
  }
});

for (const input of ui.modeInputs) {
  input.addEventListener("change", () => {
    if (state.config) describeBrowserEngine(state.engine?.info);
    describeFraming();
  });
}

if (window.matchMedia("(pointer: coarse)").matches) {
  $(".drop-title").textContent = "Add photos or a clip"; // nothing to drop on a phone
}

function syncColourChip() {
  ui.colorChip.style.background = ui.color.value;
}

/** Re-frame every finished cut-out with the current settings (no new inference). */
async function framingChanged() {
  syncColourChip();
  describeFraming();
  for (const node of ui.jobs.children) {
    const job = node.job;
    if (!job?.cutout) continue;
    try {
      await job.render();
    } catch (err) {
      console.error(err);
      job.fail(err.message || String(err));
    }
  }
}
for (const input of ui.bgInputs) input.addEventListener("change", framingChanged);
// "Image…" always offers the file picker, also to replace an image already chosen.
ui.bgInputs.find((i) => i.value === "image").addEventListener("click", () => ui.bgImage.click());
ui.bgImage.addEventListener("change", async () => {
  const file = ui.bgImage.files[0];
  ui.bgImage.value = "";
  if (!file) return;
  try {
    state.bgImage = await createImageBitmap(file, { imageOrientation: "from-image" });
    state.bgImageFile = file;
  } catch {
    ui.framingNote.textContent = `${file.name} cannot be read as an image; the background stays transparent.`;
    return;
  }
  const url = URL.createObjectURL(file);
  ui.imageChip.style.backgroundImage = `url("${url}")`;
  ui.bgInputs.find((i) => i.value === "image").checked = true;
  framingChanged();
});
ui.color.addEventListener("input", () => {
  ui.bgInputs.find((i) => i.value === "color").checked = true;
  syncColourChip();
});
ui.color.addEventListener("change", framingChanged);
for (const input of [ui.crop, ui.ecommerce]) input.addEventListener("change", framingChanged);
for (const input of [ui.quality, ui.decontaminate]) input.addEventListener("change", describeFraming);
syncColourChip();
describeFraming();

if ("serviceWorker" in navigator && window.isSecureContext) {
  // Keeps the page and onnxruntime-web for offline visits (the model is in the Cache API).
  navigator.serviceWorker.register("/sw.js").catch((err) => console.warn("service worker:", err));
}

loadConfig();
