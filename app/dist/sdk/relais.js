// src/api.ts
var RelaisError = class extends Error {
  /** 'rule' (a domain rule, see rule), 'sql' (a malformed statement or
   *  a check of the capture triggers), 'not_logged_in', 'offline', or a
   *  server code (bad_credentials, device_revoked, clock_ahead,
   *  rate_limited, token_expired…). */
  code;
  /** For code 'rule': the rule's stable name (duree_activite…). */
  rule;
  /** For code 'rule': {table, columns} of the rule; for server codes,
   *  the server's details (retry_after_seconds…). */
  details;
  constructor(code, message, rule, details) {
    super(message);
    this.name = "RelaisError";
    this.code = code;
    if (rule !== void 0) this.rule = rule;
    if (details !== void 0) this.details = details;
  }
};

// src/uuid.ts
var lastMs = 0;
var seq = 0;
function random(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}
function uuidv7(now = Date.now()) {
  let ms = Math.floor(now);
  if (ms <= lastMs) {
    ms = lastMs;
    seq++;
    if (seq > 4095) {
      ms++;
      seq = 0;
    }
  } else {
    seq = random(2).reduce((a, x) => a << 8 | x, 0) & 1023;
  }
  lastMs = ms;
  const b = random(16);
  let t = ms;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = 112 | seq >> 8;
  b[7] = seq & 255;
  b[8] = 128 | b[8] & 63;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// src/client.ts
var Client = class {
  constructor(node, backend) {
    this.node = node;
    this.backend = backend;
  }
  node;
  backend;
  listeners = /* @__PURE__ */ new Map();
  auto = null;
  /** Called by the backend for each event the engine emits. */
  dispatch(event, payload) {
    if (event === "change" && payload.source === "local") this.auto?.kick();
    for (const cb of this.listeners.get(event) ?? []) {
      try {
        cb(payload);
      } catch (e) {
        console.error("relais: an event listener failed", e);
      }
    }
  }
  call(method, ...args) {
    return this.backend.call(method, args);
  }
  login(email, password, deviceName) {
    return this.call("login", email, password, deviceName);
  }
  logout() {
    this.stopAutoSync();
    return this.call("logout");
  }
  sync() {
    return this.call("sync");
  }
  status() {
    return this.call("status").then(reviveStatus);
  }
  query(sql, params) {
    return this.call("query", sql, params);
  }
  exec(sql, params) {
    return this.call("exec", sql, params);
  }
  transaction(statements) {
    return this.call("transaction", statements);
  }
  rejected() {
    return this.call("rejected").then((list) => list.map((r) => ({ ...r, at: new Date(r.at) })));
  }
  retry(id, set) {
    return this.call("retry", id, set);
  }
  dismiss(id) {
    return this.call("dismiss", id);
  }
  erase(beneficiaireId) {
    return this.call("erase", beneficiaireId);
  }
  rules() {
    return this.call("rules");
  }
  uuid() {
    return uuidv7();
  }
  on(event, cb) {
    let set = this.listeners.get(event);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.listeners.set(event, set);
    }
    set.add(cb);
    return () => set.delete(cb);
  }
  /** Syncs now, when the network comes back, shortly after local writes
   *  and every intervalMs; after a failure, waits twice as long each
   *  time (up to 5 min) before trying again, until a sync succeeds. */
  startAutoSync(opts = {}) {
    this.stopAutoSync();
    const interval = opts.intervalMs ?? 6e4;
    let timer;
    let failures = 0;
    let running = false;
    let stopped = false;
    const schedule = (ms) => {
      if (stopped) return;
      if (timer !== void 0) clearTimeout(timer);
      timer = setTimeout(run, ms);
    };
    const run = async () => {
      if (stopped || running) return;
      running = true;
      try {
        await this.sync();
        failures = 0;
        schedule(interval);
      } catch (e) {
        const code = e.code;
        if (code === "device_revoked") {
          stopped = true;
        } else if (code === "not_logged_in" || code === "unauthorized" || code === "token_expired") {
          schedule(interval);
        } else {
          failures++;
          schedule(Math.min(5 * 6e4, 5e3 * 2 ** Math.min(failures - 1, 10)));
        }
      } finally {
        running = false;
      }
    };
    const online = () => {
      failures = 0;
      void this.call("setOnline", true);
      schedule(0);
    };
    const offline = () => void this.call("setOnline", false);
    const g = globalThis;
    g.addEventListener?.("online", online);
    g.addEventListener?.("offline", offline);
    const stop = () => {
      stopped = true;
      if (timer !== void 0) clearTimeout(timer);
      g.removeEventListener?.("online", online);
      g.removeEventListener?.("offline", offline);
      if (this.auto?.stop === stop) this.auto = null;
    };
    this.auto = { stop, kick: () => failures === 0 && schedule(2e3) };
    schedule(0);
    return stop;
  }
  stopAutoSync() {
    this.auto?.stop();
  }
  async close() {
    this.stopAutoSync();
    await this.backend.close();
  }
};
function reviveStatus(s) {
  return { ...s, lastSync: s.lastSync ? new Date(s.lastSync) : null };
}
function fromWireError(w) {
  return new RelaisError(w.code, w.message, w.rule, w.details);
}

// src/index.ts
async function open(opts = {}) {
  const url = opts.workerURL ?? new URL("./relais-worker.js", import.meta.url);
  const worker = new Worker(url, { type: "module", name: "relais" });
  const pending = /* @__PURE__ */ new Map();
  let seq2 = 0;
  let client = null;
  const opened = new Promise((resolve, reject) => {
    worker.onmessage = (ev) => {
      const m = ev.data;
      if (m.opened !== void 0) resolve(m.opened);
      else if (m.openError) reject(fromWireError(m.openError));
      else if (m.event) client?.dispatch(m.event, m.payload);
      else if (m.id !== void 0) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p?.reject(fromWireError(m.error));
        else p?.resolve(m.result);
      }
    };
    worker.onerror = (e) => reject(new Error(`relais: the worker failed to start: ${e.message}`));
  });
  worker.postMessage({ type: "open", server: opts.server ?? location.origin, dbName: opts.dbName ?? "relais", appVersion: opts.appVersion });
  const node = await opened;
  const call = (method, args) => new Promise((resolve, reject) => {
    const id = ++seq2;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, method, args });
  });
  client = new Client(node, {
    call,
    close: async () => {
      await call("close", []);
      worker.terminate();
    }
  });
  if (typeof navigator !== "undefined") void call("setOnline", [navigator.onLine]);
  addEventListener("online", () => void call("setOnline", [true]));
  addEventListener("offline", () => void call("setOnline", [false]));
  return client;
}
export {
  RelaisError,
  open,
  uuidv7
};
