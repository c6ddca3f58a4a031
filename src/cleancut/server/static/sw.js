// Service worker: makes a second visit work offline. The page, its scripts and
// onnxruntime-web's files are kept here; the model chunks are kept by the page itself
// (Cache API, verified by SHA-256), and the API is never cached.
//
// Network first for the page and its files, so an upgraded server is picked up at once;
// cache first for onnxruntime-web, whose URLs carry their version and never change.

const CACHE = "cleancut-app-v2";
const SHELL = ["/", "/static/app.css", "/static/icon.svg", "/static/js/app.js", "/static/js/browser-engine.js",
  "/static/js/engine-worker.js", "/static/js/framing.js", "/static/js/imaging.js", "/static/js/model-store.js", "/static/js/sha256.js",
  "/static/js/server-engine.js", "/api/config", "/models/resources.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .catch(() => undefined) // offline support is a bonus: never block the install on it
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    throw err;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (path.startsWith("/ort/")) {
    event.respondWith(cacheFirst(request));
  } else if (path === "/" || path.startsWith("/static/") || path === "/api/config" || path === "/models/resources.json") {
    event.respondWith(networkFirst(request));
  }
  // Everything else (the API, model chunks) goes to the network untouched.
});
