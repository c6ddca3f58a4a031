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
