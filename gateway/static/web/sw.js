// The grid worker page's service worker: it keeps the page's own files so the page
// opens without a connection. Network first (a new release is seen at once when
// online), the kept copy when the network fails (whatever its Vary: Origin, which
// module scripts send and the install did not). API answers are never kept here:
// the page keeps the worker's open tasks in IndexedDB itself.
const CACHE = "grassroots-web-3";
const SHELL = [
  "/web/worker.html",
  "/web/signin.html",
  "/web/config.json",
  "/web/css/app.css",
  "/web/icon.svg",
  "/web/i18n/en.json",
  "/web/i18n/zh.json",
  "/web/js/lib/api.js",
  "/web/js/lib/auth.js",
  "/web/js/lib/categories.js",
  "/web/js/lib/i18n.js",
  "/web/js/lib/ids.js",
  "/web/js/lib/map.js",
  "/web/js/lib/outbox.js",
  "/web/js/lib/page.js",
  "/web/js/lib/photos.js",
  "/web/js/pages/worker.js",
  "/web/js/pages/signin.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/web/")) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true, ignoreVary: true }).then((kept) => kept || Response.error())),
  );
});
