// The in-browser engine, in a module worker so the page stays responsive while ONNX Runtime
// Web computes (one IS-Net pass is seconds of CPU). Messages in: {id, type: "prepare", config}
// and {id, type: "run", width, height, pixels, mode}; out: {id, type: "progress" | "ready" |
// "result" | "error", ...}. Nothing here talks to the network except to fetch the model and
// onnxruntime-web's files from this same server; the pixels never leave the worker.
//
// Every step follows the model's recipe (config.recipe, from /api/config): its passes per
// quality mode, their input size, normalisation and resize, the activation and rescale its
// file's final map still needs, the gain of the passes' mean and the mask's upsampling.
// A pass at 768² needs the network for that size: the server sends it as a small delta on the
// model already here (config.sizes → a resources.json entry with a "derived" recipe); it is
// assembled with the model's chunks (read back from the Cache API), checked by SHA-256, and
// loaded once, on the first photo that needs it.

import { assemble, fetchEntry, loadModel } from "./model-store.js";
import { activate, combine, mirror, postprocess, preprocess } from "./imaging.js";
import { sha256Hex } from "./sha256.js";

let engine = null; // {ort, session, backend, threads, inputName, outputName}
let preparing = null;
let config = null;
let baseEntry = null; // the published model's resources.json entry
const sized = new Map(); // input size → Promise of {session, inputName, outputName}

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
    // the final map, as the server read it from the file (else IS-Net's "output", else the first)
    outputName: [config.output, "output"].find((n) => n && session.outputNames.includes(n)) || session.outputNames[0],
  };
}

async function prepare(id, cfg) {
  config = cfg;
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
  baseEntry = entry;
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

/** The session for a pass: the model's own at its input size, else its delta (a square
 * size², assembled once). */
function sessionFor(pass, id) {
  const recipe = config.recipe;
  if (pass.height === recipe.height && pass.width === recipe.width) return Promise.resolve(engine);
  if (pass.height !== pass.width) return Promise.reject(new Error(`no ${pass.width}×${pass.height} network for the browser`));
  const size = pass.width;
  if (!sized.has(size)) {
    const promise = buildSized(size, id);
    sized.set(size, promise);
    promise.catch(() => sized.delete(size)); // a later photo tries again
  }
  return sized.get(size);
}

async function buildSized(size, id) {
  const key = config.sizes && config.sizes[String(size)];
  if (!key) throw new Error(`this server offers no ${size}px network for the browser`);
  const entry = await fetchEntry(config.resources, key);
  const recipe = entry.derived;
  if (!recipe || recipe.base !== config.model.resource || recipe.input_size !== size) {
    throw new Error(`the server's ${size}px network is not a delta on this model`);
  }
  const delta = await loadModel(entry, () => {});
  // The published model again, from the browser's cache (its chunks re-checked): holding its
  // 88 MB in this worker for a mode that may never be chosen would cost every visit.
  const base = await loadModel(baseEntry, ({ loaded, total, fromNetwork }) =>
    post({ id, type: "progress", stage: "download", loaded, total, fromNetwork }),
  );
  const bytes = assemble(recipe, delta, base);
  if ((await sha256Hex(bytes)) !== recipe.sha256) throw new Error(`the ${size}px network failed its SHA-256 check`);
  return createSession(config, bytes, engine.backend, id);
}

async function run(id, width, height, pixels, mode) {
  if (!engine) throw new Error("the engine is not prepared");
  const recipe = config.recipe;
  const own = { height: recipe.height, width: recipe.width, flip: false };
  const passes = (recipe.modes && recipe.modes[mode]) || [own];
  const rgba = new Uint8ClampedArray(pixels);
  const timings = { preprocess: 0, inference: 0, postprocess: 0 };
  const outputs = [];
  for (const [i, pass] of passes.entries()) {
    const session = await sessionFor(pass, id);
    const t0 = performance.now();
    post({ id, type: "progress", stage: "preprocess" });
    let input = preprocess(rgba, width, height, recipe, pass.height, pass.width);
    if (pass.flip) input = mirror(input, pass.width, 3, pass.height);
    const t1 = performance.now();
    post({ id, type: "progress", stage: "inference", pass: i + 1, passes: passes.length });
    const tensor = new session.ort.Tensor("float32", input, [1, 3, pass.height, pass.width]);
    const result = await session.session.run({ [session.inputName]: tensor }, [session.outputName]);
    const output = result[session.outputName];
    let data = output.location && output.location !== "cpu" ? await output.getData() : output.data;
    data = activate(Float32Array.from(data), recipe);
    if (pass.flip) data = mirror(data, pass.width, 1, pass.height);
    tensor.dispose?.();
    output.dispose?.();
    outputs.push({ size: pass.width, data });
    timings.preprocess += t1 - t0;
    timings.inference += performance.now() - t1;
  }
  const t2 = performance.now();
  post({ id, type: "progress", stage: "postprocess" });
  const y = combine(outputs, recipe.average_gain ?? 1);
  const mask = postprocess(y.data, width, height, y.size, recipe.upsample);
  timings.postprocess = performance.now() - t2;
  post({ id, type: "result", mask: mask.buffer, timings, passes: passes.length }, [mask.buffer]);
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
      await run(id, event.data.width, event.data.height, event.data.pixels, event.data.mode || "default");
    }
  } catch (err) {
    post({ id, type: "error", message: err && err.message ? err.message : String(err) });
  }
};
