// "On the server" mode: the photo is posted to /api/remove. XMLHttpRequest rather than
// fetch, because only XHR reports upload progress.

/** An error answer of the API: its message (the server's detail), HTTP status, error code
 * and Retry-After in seconds (null without one). */
export class ServerError extends Error {
  constructor(message, status, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** 503s worth waiting for: the model still loading, every slot or upload place taken, no
 * worker in time, every clip place taken. Not model_unavailable: the model failed. */
const RETRYABLE = new Set(["not_ready", "overloaded", "uploads_busy", "queue_timeout", "videos_busy"]);

function serverError(status, body, retryHeader) {
  const retry = retryHeader == null || retryHeader === "" ? NaN : Number(retryHeader);
  const retryAfter = Number.isFinite(retry) && retry >= 0 ? retry : null;
  let detail = (body && body.detail) || `the server answered ${status}`;
  if (retryAfter != null) detail += ` (retry in ${retryAfter} s)`;
  return new ServerError(detail, status, (body && body.error) || null, retryAfter);
}

/**
 * `attempt()` again after each 503 the server asks to retry (its Retry-After, at least 1 s
 * and at most 30 s between tries), for at most `maxWaitS` seconds in all; any other error,
 * or one past that time, is thrown. `onWait(err, seconds)` is told of each wait.
 */
export async function retrying(attempt, onWait, maxWaitS = 600) {
  let waited = 0;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const retryable = err instanceof ServerError && err.status === 503 && RETRYABLE.has(err.code) && err.retryAfter != null;
      if (!retryable || waited >= maxWaitS) throw err;
      const seconds = Math.min(30, Math.max(1, err.retryAfter));
      onWait(err, seconds);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      waited += seconds;
    }
  }
}

// `params`: further API options (e.g. {refine: "guided"}), sent as form fields.
export function removeOnServer(file, onProgress, params = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/remove?format=png");
    xhr.responseType = "blob";
    xhr.upload.onprogress = (e) => onProgress({ stage: "upload", loaded: e.loaded, total: e.total || file.size });
    xhr.upload.onload = () => onProgress({ stage: "server" });
    xhr.onprogress = (e) => onProgress({ stage: "result", loaded: e.loaded, total: e.total });
    xhr.onerror = () => reject(new Error("could not reach the server"));
    xhr.ontimeout = () => reject(new Error("the server did not answer in time"));
    xhr.onload = async () => {
      if (xhr.status === 200) {
        resolve({ blob: xhr.response, timing: xhr.getResponseHeader("Server-Timing") || "" });
        return;
      }
      let body = null;
      try {
        body = JSON.parse(await xhr.response.text());
      } catch {
        // not JSON: keep the status line
      }
      reject(serverError(xhr.status, body, xhr.getResponseHeader("Retry-After")));
    };
    const form = new FormData();
    form.append("file", file, file.name || "image");
    for (const [name, value] of Object.entries(params)) form.append(name, value);
    xhr.send(form);
  });
}

// Clips: posted to /api/remove-video, which answers 202 with a job; the job is polled at
// /api/jobs/{id} (frames done / total) and its result fetched once when done.

async function responseError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status line
  }
  return serverError(response.status, body, response.headers.get("Retry-After"));
}

function postClip(file, params, background, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/remove-video");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => onProgress({ stage: "upload", loaded: e.loaded, total: e.total || file.size });
    xhr.upload.onload = () => onProgress({ stage: "checking" });
    xhr.onerror = () => reject(new Error("could not reach the server"));
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 202) {
        resolve(body);
        return;
      }
      reject(serverError(xhr.status, body, xhr.getResponseHeader("Retry-After")));
    };
    const form = new FormData();
    form.append("file", file, file.name || "clip");
    if (background) form.append("background", background, background.name || "background");
    for (const [name, value] of Object.entries(params)) form.append(name, value);
    xhr.send(form);
  });
}

/**
 * Cut a clip out on the server. `params`: API options (format, bg_color, mode, …) sent as
 * form fields; `background`: an image File for the background, or null. `onProgress` gets
 * {stage: "upload", loaded, total}, {stage: "checking"}, {stage: "frames", job} (each poll)
 * and {stage: "result", loaded, total}. `signal` (an AbortSignal) cancels the job on the
 * server. A 503 asking to retry (model loading, server busy) is retried after its Retry-After,
 * `onWait(err, seconds)` told of each wait. Resolves to {blob, job} (the job's last status).
 */
export async function removeClipOnServer(file, params, background, onProgress, signal, onWait = () => {}) {
  let job = await retrying(() => postClip(file, params, background, onProgress), onWait);
  const cancel = () => fetch(job.status_url, { method: "DELETE" }).catch(() => {});
  if (signal?.aborted) {
    cancel();
    throw new Error("cancelled");
  }
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      onProgress({ stage: "frames", job });
      if (job.state === "done") break;
      if (job.state === "failed" || job.state === "cancelled") {
        throw new Error(job.error ? job.error.detail : `the clip job was ${job.state}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (signal?.aborted) throw new Error("cancelled");
      const response = await fetch(job.status_url, { cache: "no-store" });
      if (!response.ok) throw await responseError(response);
      job = await response.json();
    }
    const response = await fetch(job.result.url, { cache: "no-store" });
    if (!response.ok) throw await responseError(response);
    const total = Number(response.headers.get("Content-Length")) || job.result.size || 0;
    const reader = response.body.getReader();
    const parts = [];
    let loaded = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      loaded += value.byteLength;
      onProgress({ stage: "result", loaded, total });
    }
    return { blob: new Blob(parts, { type: job.result.media_type }), job };
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}
