// The page's handle on the in-browser engine (engine-worker.js): request/response over
// postMessage, with progress callbacks.

export class BrowserEngine {
  constructor(config) {
    this.config = config;
    this.worker = new Worker(new URL("./engine-worker.js", import.meta.url), { type: "module" });
    this.pending = new Map();
    this.nextId = 1;
    this.info = null;
    this.worker.onmessage = (event) => this.#dispatch(event.data);
    this.worker.onerror = (event) => {
      const error = new Error(event.message || "the in-browser engine failed to start");
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
    };
  }

  #dispatch(message) {
    const call = this.pending.get(message.id);
    if (!call) return;
    if (message.type === "progress") {
      call.onProgress?.(message);
      return;
    }
    this.pending.delete(message.id);
    if (message.type === "error") call.reject(new Error(message.message));
    else call.resolve(message);
  }

  #call(message, onProgress, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** Download (or read from the cache) and load the model; resolves {backend, threads}. */
  async prepare(onProgress) {
    if (this.info) return this.info;
    this.info = await this.#call({ type: "prepare", config: this.config }, onProgress);
    return this.info;
  }

  /** RGBA pixels → full-size uint8 mask, in quality `mode` (fast, default or best, as the
   * server runs them). The pixels are copied to the worker, not uploaded. */
  async segment(imageData, onProgress, mode = "default") {
    await this.prepare(onProgress);
    const pixels = imageData.data.slice().buffer;
    const reply = await this.#call(
      { type: "run", width: imageData.width, height: imageData.height, pixels, mode },
      onProgress,
      [pixels],
    );
    return { mask: new Uint8Array(reply.mask), timings: reply.timings, passes: reply.passes };
  }
}
