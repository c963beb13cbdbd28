// The service worker: it keeps the app's files (the "shell": page, code,
// styles, icons, the SDK and SQLite's WebAssembly) so that the app opens
// with no network at all. The build writes the list of files and a
// version (a hash of their contents) into this script, so a new build
// is a new script: the browser installs it at the next visit online,
// fills a new cache and drops the old one.
//
// Only requests under the app's scope are answered here; the sync API
// (/v1/…) always goes to the network, where the SDK handles failures.

declare const __VERSION__: string;
declare const __FILES__: string[];

const sw = self as unknown as ServiceWorkerGlobalScope;
const CACHE = `relais-app-${__VERSION__}`;
const scope = new URL(sw.registration.scope);

sw.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // cache: 'reload' fetches each file from the server, not from the
    // HTTP cache, so the cache holds exactly this build.
    await cache.addAll(__FILES__.map((f) => new Request(new URL(f, scope).href, { cache: 'reload' })));
    await sw.skipWaiting();
  })());
});

sw.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('relais-app-') && name !== CACHE) await caches.delete(name);
    }
    await sw.clients.claim();
  })());
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Every page of the app is the one page, index.html: the screens are
    // in the part after #.
    const hit = req.mode === 'navigate'
      ? await cache.match(new URL('index.html', scope).href)
      : await cache.match(req, { ignoreSearch: true });
    return hit ?? fetch(req);
  })());
});
