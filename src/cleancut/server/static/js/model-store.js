// The model file for the in-browser engine: fetched from this server as SHA-256-named
// chunks (IMG.LY's resources.json layout), each checked with SHA-256 before use, and kept in
// the Cache API so that later visits start without a download, offline included.

import { sha256Hex } from "./sha256.js";

export const CACHE_NAME = "cleancut-model-chunks-v1";
const PARALLEL = 6; // browsers open ~6 connections per host over HTTP/1.1
const ATTEMPTS = 3;

function cacheAvailable() {
  return typeof caches !== "undefined";
}

/** The model's entry of resources.json: {chunks: [{hash, offsets: [start, end]}], size}. */
export async function fetchEntry(resourcesUrl, key) {
  let response;
  try {
    response = await fetch(resourcesUrl, { cache: "no-cache" });
  } catch (err) {
    // Offline: the service worker answers from its copy when it has one; else this fails.
    throw new Error(`could not reach the server for the model list (${err.message})`);
  }
  if (!response.ok) throw new Error(`the server answered ${response.status} for ${resourcesUrl}`);
  const resources = await response.json();
  const entry = resources[key];
  if (!entry || !Array.isArray(entry.chunks)) throw new Error(`the server offers no model ${key}`);
  let pos = 0;
  for (const c of entry.chunks) {
    if (!/^[0-9a-f]{64}$/.test(c.hash) || c.offsets[0] !== pos || c.offsets[1] <= pos) {
      throw new Error("the model list is malformed");
    }
    pos = c.offsets[1];
  }
  if (pos !== entry.size) throw new Error("the model's chunks do not add up to its size");
  return entry;
}

function chunkUrl(hash) {
  return new URL(`/models/chunks/${hash}`, self.location.origin).href;
}

/** Which chunks of an entry are already in the Cache API. */
export async function cachedHashes(entry) {
  if (!cacheAvailable()) return new Set();
  const cache = await caches.open(CACHE_NAME);
  const present = new Set();
  await Promise.all(
    entry.chunks.map(async (c) => {
      if (await cache.match(chunkUrl(c.hash))) present.add(c.hash);
    }),
  );
  return present;
}

async function readWithProgress(response, expected, onBytes) {
  if (!response.body) {
    const buf = await response.arrayBuffer();
    onBytes(buf.byteLength);
    return buf;
  }
  const out = new Uint8Array(expected);
  const reader = response.body.getReader();
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > expected) throw new Error("a model chunk is longer than announced");
    out.set(value, at);
    at += value.length;
    onBytes(value.length);
  }
  if (at !== expected) throw new Error("a model chunk ended early");
  return out.buffer;
}

/**
 * The whole model as one Uint8Array, every chunk verified.
 * onProgress({loaded, total, fromCache}) reports bytes as they arrive (cached ones at once).
 */
export async function loadModel(entry, onProgress) {
  const cache = cacheAvailable() ? await caches.open(CACHE_NAME) : null;
  const model = new Uint8Array(entry.size);
  let loaded = 0;
  let fromNetwork = 0;
  const report = () => onProgress({ loaded, total: entry.size, fromNetwork });

  async function getChunk(chunk) {
    const [start, end] = chunk.offsets;
    const url = chunkUrl(chunk.hash);
    if (cache) {
      const hit = await cache.match(url);
      if (hit) {
        const buf = await hit.arrayBuffer();
        if (buf.byteLength === end - start && (await sha256Hex(buf)) === chunk.hash) {
          model.set(new Uint8Array(buf), start);
          loaded += buf.byteLength;
          report();
          return;
        }
        await cache.delete(url); // damaged copy: fetch it again
      }
    }
    let lastError = null;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      let counted = 0;
      try {
        const response = await fetch(url);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const buf = await readWithProgress(response, end - start, (n) => {
          counted += n;
          loaded += n;
          fromNetwork += n;
          report();
        });
        if ((await sha256Hex(buf)) !== chunk.hash) throw new Error("SHA-256 mismatch");
        model.set(new Uint8Array(buf), start);
        if (cache) {
          try {
            await cache.put(url, new Response(buf, { headers: { "Content-Type": "application/octet-stream" } }));
          } catch (err) {
            // Quota exceeded or private browsing: the download still works, just not offline.
            console.warn("could not keep a model chunk in the browser cache:", err);
          }
        }
        return;
      } catch (err) {
        lastError = err;
        loaded -= counted; // the retry counts its own bytes: the bar never overshoots
        fromNetwork -= counted;
        report();
      }
    }
    throw new Error(`model chunk ${chunk.hash.slice(0, 12)}… failed ${ATTEMPTS} times: ${lastError.message}`);
  }

  const queue = [...entry.chunks];
  const lanes = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    while (queue.length) await getChunk(queue.shift());
  });
  await Promise.all(lanes);
  return model;
}

/**
 * A file from a "derived" recipe: its parts, in order, are [source, start, end] ranges of the
 * downloaded `delta` or of the `base` model already here. The caller checks its SHA-256.
 */
export function assemble(recipe, delta, base) {
  const out = new Uint8Array(recipe.size);
  let at = 0;
  for (const [source, start, end] of recipe.parts) {
    const from = source === "delta" ? delta : source === "base" ? base : null;
    if (!from || !(start >= 0 && end >= start && end <= from.length) || at + end - start > out.length) {
      throw new Error("the model delta is malformed");
    }
    out.set(from.subarray(start, end), at);
    at += end - start;
  }
  if (at !== out.length) throw new Error("the model delta does not add up to its size");
  return out;
}
