// "On the server" mode: the photo is posted to /api/remove. XMLHttpRequest rather than
// fetch, because only XHR reports upload progress.

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
      let detail = `the server answered ${xhr.status}`;
      try {
        const body = JSON.parse(await xhr.response.text());
        if (body.detail) detail = body.detail;
        const retry = xhr.getResponseHeader("Retry-After");
        if (retry) detail += ` (retry in ${retry} s)`;
      } catch {
        // not JSON: keep the status line
      }
      reject(new Error(detail));
    };
    const form = new FormData();
    form.append("file", file, file.name || "image");
    for (const [name, value] of Object.entries(params)) form.append(name, value);
    xhr.send(form);
  });
}

// Clips: posted to /api/remove-video, which answers 202 with a job; the job is polled at
// /api/jobs/{id} (frames done / total) and its result fetched once when done.

async function errorText(response) {
  let detail = `the server answered ${response.status}`;
  try {
    const body = await response.json();
    if (body.detail) detail = body.detail;
    const retry = response.headers.get("Retry-After");
    if (retry) detail += ` (retry in ${retry} s)`;
  } catch {
    // not JSON: keep the status line
  }
  return detail;
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
      let detail = body.detail || `the server answered ${xhr.status}`;
      const retry = xhr.getResponseHeader("Retry-After");
      if (retry) detail += ` (retry in ${retry} s)`;
      reject(new Error(detail));
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
 * server. Resolves to {blob, job} (the job's last status).
 */
export async function removeClipOnServer(file, params, background, onProgress, signal) {
  let job = await postClip(file, params, background, onProgress);
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
      if (!response.ok) throw new Error(await errorText(response));
      job = await response.json();
    }
    const response = await fetch(job.result.url, { cache: "no-store" });
    if (!response.ok) throw new Error(await errorText(response));
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
