// The in-browser engine, in a module worker so the page stays responsive while ONNX Runtime
// Web computes (one IS-Net pass is seconds of CPU). Messages in: {id, type: "prepare", config}
// and {id, type: "run", width, height, pixels}; out: {id, type: "progress" | "ready" |
// "result" | "error", ...}. Nothing here talks to the network except to fetch the model and
// onnxruntime-web's files from this same server; the pixels never leave the worker.

import { fetchEntry, loadModel } from "./model-store.js";
import { postprocess, preprocess, INPUT_SIZE } from "./imaging.js";

let engine = null; // {ort, session, backend, threads, inputName, outputName}
let preparing = null;

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

/** A real GPU adapter: not missing, not the software fallback (SwiftShader is ~30x slower than WASM). */
async function realGpuAdapter() {
  if (!("gpu" in navigator) || !navigator.gpu) return null;
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) return null;
    const info = adapter.info || {};
    const text = `${info.vendor || ""} ${info.architecture || ""} ${info.device || ""} ${info.description || ""}`;
    if (adapter.isFallbackAdapter || info.isFallbackAdapter || /swiftshader|llvmpipe|software/i.test(text)) {
      return null;
    }
    return adapter;
  } catch {
    return null;
  }
}

function threadCount() {
  // ORT's own default is 1 here (or at most 4); every logical core helps these convolutions.
  // Threads need SharedArrayBuffer, which needs cross-origin isolation (COOP + COEP).
  if (!self.crossOriginIsolated) return 1;
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 16));
}

async function createSession(config, modelBytes, backend, id) {
  const base = new URL(config.ort.base, self.location.origin).href;
  const bundle = backend === "webgpu" ? config.ort.webgpu : config.ort.wasm;
  const ort = await import(base + bundle);
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = threadCount();
  ort.env.logLevel = "error";
  post({ id, type: "progress", stage: "session", backend });
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: [backend],
    graphOptimizationLevel: "all",
  });
  return {
    ort,
    session,
    backend,
    threads: backend === "wasm" ? ort.env.wasm.numThreads : null,
    inputName: session.inputNames[0],
    outputName: session.outputNames.includes("output") ? "output" : session.outputNames[0],
  };
}

async function prepare(id, config) {
  const started = performance.now();
  const entry = await fetchEntry(config.resources, config.model.resource);
  let lastReport = 0;
  const model = await loadModel(entry, ({ loaded, total, fromNetwork }) => {
    const now = performance.now();
    if (now - lastReport > 100 || loaded === total) {
      lastReport = now;
      post({ id, type: "progress", stage: "download", loaded, total, fromNetwork });
    }
  });
  const wanted = config.backend || "auto";
  let created = null;
  if (wanted === "webgpu" || (wanted === "auto" && (await realGpuAdapter()))) {
    try {
      created = await createSession(config, model, "webgpu", id);
    } catch (err) {
      console.warn("WebGPU session failed; using WebAssembly:", err);
    }
  }
  if (!created) created = await createSession(config, model, "wasm", id);
  engine = created;
  return {
    backend: engine.backend,
    threads: engine.threads,
    isolated: self.crossOriginIsolated,
    persistent: typeof caches !== "undefined", // no Cache API outside secure contexts
    seconds: (performance.now() - started) / 1000,
  };
}

async function run(id, width, height, pixels) {
  if (!engine) throw new Error("the engine is not prepared");
  const t0 = performance.now();
  post({ id, type: "progress", stage: "preprocess" });
  const input = preprocess(new Uint8ClampedArray(pixels), width, height);
  const t1 = performance.now();
  post({ id, type: "progress", stage: "inference" });
  const tensor = new engine.ort.Tensor("float32", input, [1, 3, INPUT_SIZE, INPUT_SIZE]);
  const outputs = await engine.session.run({ [engine.inputName]: tensor }, [engine.outputName]);
  const output = outputs[engine.outputName];
  const data = output.location && output.location !== "cpu" ? await output.getData() : output.data;
  const t2 = performance.now();
  post({ id, type: "progress", stage: "postprocess" });
  const mask = postprocess(data, width, height);
  tensor.dispose?.();
  output.dispose?.();
  const t3 = performance.now();
  const timings = { preprocess: t1 - t0, inference: t2 - t1, postprocess: t3 - t2 };
  post({ id, type: "result", mask: mask.buffer, timings }, [mask.buffer]);
}

self.onmessage = async (event) => {
  const { id, type } = event.data;
  try {
    if (type === "prepare") {
      preparing = preparing || prepare(id, event.data.config);
      try {
        post({ id, type: "ready", ...(await preparing) });
      } catch (err) {
        preparing = null; // let a later photo try again (e.g. after the network came back)
        throw err;
      }
    } else if (type === "run") {
      await run(id, event.data.width, event.data.height, event.data.pixels);
    }
  } catch (err) {
    post({ id, type: "error", message: err && err.message ? err.message : String(err) });
  }
};
