// Runs IMG.LY's @imgly/background-removal-node on a list of photos, for benchmarks/compare.py.
//
//   node imgly_node_run.mjs JOB.json
//
// JOB.json: {"work": DIR (holds node_modules), "publicPath": "file:///…/dist/",
//            "model": "medium", "quality": 0.8, "repeat": 1,
//            "warmup": {"input": IN, "output": OUT},
//            "photos": [{"name": N, "input": IN, "output": OUT}, …]}
//
// One JSON object per line on stdout: {"kind": "info"|"warmup"|"photo", …}. Each timed
// call reads the file, calls removeBackground (decode, resize, inference, PNG encode) and
// writes the PNG; the first call also loads the model (removeBackground loads lazily and
// memoises the session per config), so it is reported apart as "warmup".
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

const job = JSON.parse(await readFile(process.argv[2], "utf8"));
const require = createRequire(path.join(job.work, "package.json"));

function version(name) {
  // Some packages do not export ./package.json: read it from the resolved entry's folder.
  try {
    let dir = path.dirname(require.resolve(name));
    for (let i = 0; i < 5; i += 1) {
      try {
        const pkg = require(path.join(dir, "package.json"));
        if (pkg.name === name) return pkg.version;
      } catch {
        // not here: go up
      }
      dir = path.dirname(dir);
    }
  } catch {
    // not installed
  }
  return null;
}

const t0 = performance.now();
const mod = await import(pathToFileURL(require.resolve("@imgly/background-removal-node")).href);
const removeBackground = mod.removeBackground ?? mod.default?.removeBackground ?? mod.default;
const importMs = performance.now() - t0;

const config = {
  publicPath: job.publicPath,
  model: job.model ?? "medium",
  output: { format: "image/png", quality: job.quality ?? 0.8 },
};

const MIME = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp" };

// removeBackground reports "compute:inference" 0/1 before its 1024² resize and 1/1 after
// the mask is resized back: the span between is resize + ONNX Runtime + resize; the rest of
// a call is file read, sharp decode, alpha copy, sharp PNG encode and file write.
let marks = {};
config.progress = (key, current) => {
  if (key === "compute:inference") marks[current === 0 ? "start" : "end"] = performance.now();
};

async function cut(input, output) {
  marks = {};
  const cpu0 = process.cpuUsage(); // whole process: ORT threads and sharp's libuv threads too
  const start = performance.now();
  const data = await readFile(input);
  const type = MIME[path.extname(input).toLowerCase()] ?? "application/octet-stream";
  const blob = await removeBackground(new Blob([data], { type }), config);
  const png = Buffer.from(await blob.arrayBuffer());
  await writeFile(output, png);
  const end = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const stages = {};
  if (marks.start !== undefined && marks.end !== undefined) {
    stages.read_decode = (marks.start - start) / 1000;
    stages.resize_inference_resize = (marks.end - marks.start) / 1000;
    stages.compose_encode_write = (end - marks.end) / 1000;
  }
  return { seconds: (end - start) / 1000, cpu_s: (cpu.user + cpu.system) / 1e6, bytes: png.length, stages };
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

emit({
  kind: "info",
  node: process.version,
  versions: {
    "@imgly/background-removal-node": version("@imgly/background-removal-node"),
    "onnxruntime-node": version("onnxruntime-node"),
    sharp: version("sharp"),
  },
  import_s: importMs / 1000,
  config: { publicPath: config.publicPath, model: config.model, output: config.output },
  executionMode: "parallel (hard-coded in its createOnnxSession), graphOptimizationLevel all",
});

if (job.warmup) {
  const r = await cut(job.warmup.input, job.warmup.output);
  emit({ kind: "warmup", input: job.warmup.input, ...r });
}
for (const photo of job.photos) {
  for (let i = 0; i < (job.repeat ?? 1); i += 1) {
    const r = await cut(photo.input, photo.output);
    emit({ kind: "photo", name: photo.name, repeat: i, ...r });
  }
}
