// creditgate operator dashboard: plain JavaScript, no build step, no
// dependencies. It is a client of the admin JSON API on the same origin. The
// admin token lives in this tab's sessionStorage and travels only in the
// Authorization header, never in a URL. Money stays exact: amounts are the API's
// six-decimal strings, summed as BigInt micro-USD; floats are used only to turn
// a sum into a bar's height in pixels. Every value from the API reaches the page
// through textContent or an attribute, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "creditgate.adminToken";
  const API = "/admin/v1";
  const REFRESH_MS = 5000;       // the balance is real time; keep the view close to it
  const EXPIRY_REFRESH_MS = 60000; // next expiries need one request per account
  const EXPIRY_FETCH_LIMIT = 200;  // accounts whose next expiry the list looks up
  const LEDGER_PAGE = 1000;        // the API's maximum page
  const LEDGER_PAGES_PER_LOAD = 50; // then the rest on the next refresh
  const LEDGER_ROWS_STEP = 100;
  const CHART_DAYS = 30;
  const MAX_SERIES = 8;            // more models than this are drawn as "other models"

  const $ = (id) => document.getElementById(id);

  // ---- state ---------------------------------------------------------------

  const state = {
    accounts: [],
    expiries: new Map(),  // account id -> {at: ms, value: ISO string or ""}
    current: null,        // the open account's id
    ledger: null,         // {account, events, last, complete}
    ledgerRows: LEDGER_ROWS_STEP,
    busy: false,          // a refresh is in flight
    again: false,         // another refresh was asked for meanwhile
    pendingTopUp: null,   // {fingerprint, key}: reused when a failed request is retried unchanged
  };

  // ---- money: exact decimal strings <-> BigInt micro-USD ---------------------

  const MICROS = 1000000n;

  function parseMicros(s) {
    const m = /^(-)?(\d+)(?:\.(\d{1,6}))?$/.exec(String(s));
    if (!m) throw new Error("not a money amount: " + s);
    const v = BigInt(m[2]) * MICROS + BigInt((m[3] || "").padEnd(6, "0"));
    return m[1] ? -v : v;
  }

  function formatMicros(v) {
    const neg = v < 0n;
    if (neg) v = -v;
    const whole = (v / MICROS).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const frac = (v % MICROS).toString().padStart(6, "0");
    return (neg ? "-$" : "$") + whole + "." + frac;
  }

  const money = (s) => formatMicros(parseMicros(s));

  // A short form for chart axes: $12.34, $0.0042.
  function shortMoney(v) {
    const whole = v / MICROS;
    const frac = (v % MICROS).toString().padStart(6, "0");
    return "$" + whole.toString() + "." + (whole > 0n ? frac.slice(0, 2) : frac.replace(/0+$/, "").padEnd(2, "0"));
  }

  // ---- time ------------------------------------------------------------------

  function formatTime(iso) {
    if (!iso || iso.startsWith("0001-")) return "–";
    return iso.slice(0, 16).replace("T", " ") + " UTC";
  }

  const dayOf = (iso) => iso.slice(0, 10); // the API's times are UTC ("…Z")

  function lastDays(n) {
    const days = [];
    const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    for (let i = n - 1; i >= 0; i--) days.push(new Date(today - i * 86400000).toISOString().slice(0, 10));
    return days;
  }

  // ---- the API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, detail) {
      super(detail && detail.message ? detail.message : "HTTP " + status);
      this.status = status;
      this.code = detail && detail.code;
      this.param = detail && detail.param;
    }
  }

  async function api(method, path, body, headers) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new APIError(401, { message: "not signed in" });
    const h = Object.assign({ Accept: "application/json", Authorization: "Bearer " + token }, headers || {});
    const init = { method, headers: h, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, { message: "cannot reach the admin API (" + e.message + ")" });
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: reported below */ }
    if (res.status === 401) {
      signOut("The admin token was refused. Sign in again.");
      throw new APIError(401, data && data.error);
    }
    if (!res.ok) throw new APIError(res.status, (data && data.error) || { message: "HTTP " + res.status + " " + text.slice(0, 200) });
    return { status: res.status, data };
  }

  const enc = encodeURIComponent;
  const accountPath = (id, rest) => API + "/accounts/" + enc(id) + (rest || "");

  // ---- DOM helpers -----------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function moneyCell(s, field) {
    const v = parseMicros(s);
    return el("td", { class: "num" + (v < 0n ? " neg" : ""), "data-field": field, text: formatMicros(v) });
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  function showResult(id, text, ok) {
    const p = $(id);
    p.textContent = text;
    p.className = "result " + (ok ? "ok" : "error");
  }

  const describe = (e) => e.message + (e.param ? " (" + e.param + ")" : "");

  // ---- sign in / out ---------------------------------------------------------

  function showLogin(message) {
    $("login-view").hidden = false;
    $("accounts-view").hidden = true;
    $("account-view").hidden = true;
    $("controls").hidden = true;
    $("login-error").textContent = message || "";
    $("token").value = "";
    setStatus("");
    $("token").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.accounts = [];
    state.expiries.clear();
    state.ledger = null;
    hideNewKey();
    showLogin(message);
  }

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await loadAccounts();
    } catch (e) {
      if (e.status !== 401) signOut("Sign-in failed: " + describe(e));
      return;
    }
    $("login-view").hidden = true;
    $("accounts-view").hidden = false;
    $("controls").hidden = false;
    $("token").value = "";
    await route();
  }

  // ---- accounts list ---------------------------------------------------------

  async function loadAccounts() {
    const { data } = await api("GET", API + "/accounts");
    state.accounts = data.data || [];
    renderAccounts();
    loadExpiries(); // fills the last column as answers come
  }

  function renderAccounts() {
    const body = $("accounts").tBodies[0];
    const rows = state.accounts.map((a) => {
      const link = el("a", { href: "#/accounts/" + enc(a.id), text: a.id });
      const tr = el("tr", { "data-account": a.id, class: a.id === state.current ? "selected" : "" },
        el("td", { "data-field": "id" }, link),
        el("td", { "data-field": "tier", text: a.tier }),
        moneyCell(a.balance, "balance"),
        moneyCell(a.debt, "debt"),
        moneyCell(a.reserved, "reserved"),
        moneyCell(a.available, "available"),
        el("td", { "data-field": "next_expiry", text: expiryText(a.id) }));
      tr.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") location.hash = "#/accounts/" + enc(a.id);
      });
      return tr;
    });
    body.replaceChildren(...rows);
    $("accounts-empty").hidden = state.accounts.length > 0;
  }

  function expiryText(id) {
    const e = state.expiries.get(id);
    if (!e) return "…";
    return e.value ? formatTime(e.value) : "–";
  }

  // nextExpiry is the earliest expiry of a grant that still has credit.
  function nextExpiry(account) {
    const now = new Date().toISOString();
    let next = "";
    for (const g of account.grants || []) {
      if (parseMicros(g.remaining) > 0n && g.expires_at > now && (!next || g.expires_at < next)) next = g.expires_at;
    }
    return next;
  }

  // loadExpiries looks up the next expiry of each listed account (the list
  // answer has no grants), four requests at a time.
  async function loadExpiries() {
    const now = Date.now();
    const todo = state.accounts.slice(0, EXPIRY_FETCH_LIMIT)
      .map((a) => a.id)
      .filter((id) => { const e = state.expiries.get(id); return !e || now - e.at > EXPIRY_REFRESH_MS; });
    const worker = async () => {
      for (let id = todo.shift(); id !== undefined; id = todo.shift()) {
        try {
          const { data } = await api("GET", accountPath(id));
          setExpiry(id, nextExpiry(data));
        } catch (_) { /* left as "…"; tried again at the next refresh */ }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  function setExpiry(id, value) {
    state.expiries.set(id, { at: Date.now(), value });
    const cell = document.querySelector('#accounts tr[data-account="' + CSS.escape(id) + '"] td[data-field="next_expiry"]');
    if (cell) cell.textContent = expiryText(id);
  }

  // ---- one account -----------------------------------------------------------

  async function loadAccount(id) {
    const [acct, keys] = await Promise.all([api("GET", accountPath(id)), api("GET", accountPath(id, "/keys"))]);
    if (state.current !== id) return; // the operator moved on meanwhile
    renderAccount(acct.data);
    setExpiry(id, nextExpiry(acct.data));
    renderKeys(keys.data.data || []);
    await loadLedger(id);
  }

  function renderAccount(a) {
    $("account-id").textContent = a.id;
    const item = (label, field, value, cls) => el("div", {}, el("dt", { text: label }),
      el("dd", { "data-field": field, class: cls || "", text: value }));
    const m = (label, field) => {
      const v = parseMicros(a[field]);
      return item(label, field, formatMicros(v), v < 0n ? "neg" : "");
    };
    const ar = a.auto_recharge || {};
    const auto = ar.enabled ? "below " + money(ar.threshold) + " buy " + money(ar.amount) + ", ≤ " + money(ar.monthly_limit) + "/month" : "off";
    $("account-summary").replaceChildren(
      m("Balance", "balance"), m("Available", "available"), m("Credit", "credit"), m("Debt", "debt"),
      m("Reserved", "reserved"), m("Grace", "grace"),
      item("Tier", "tier", a.tier, "small"),
      item("Next expiry", "next_expiry", formatTime(nextExpiry(a)), "small"),
      item("Auto-recharge", "auto_recharge", auto, "small"),
      item("Created", "created_at", formatTime(a.created_at), "small"));
    const rows = (a.grants || []).map((g) => el("tr", { "data-grant": g.id },
      el("td", { class: "mono", text: g.id }),
      el("td", { text: g.source }),
      moneyCell(g.amount, "amount"),
      moneyCell(g.remaining, "remaining"),
      el("td", { text: formatTime(g.granted_at) }),
      el("td", { text: formatTime(g.expires_at) })));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No grants yet." })));
    $("grants").tBodies[0].replaceChildren(...rows);
  }

  function renderKeys(keys) {
    const rows = keys.map((k) => el("tr", { "data-key": k.id },
      el("td", { class: "mono", text: k.id }),
      el("td", { text: k.name || "–" }),
      el("td", { class: "mono", text: k.hint }),
      el("td", { text: formatTime(k.created_at) })));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "No keys." })));
    $("keys").tBodies[0].replaceChildren(...rows);
  }

  // loadLedger reads the events the page has not seen yet (the ledger is
  // append-only, oldest first), so a refresh costs one request when nothing
  // happened.
  async function loadLedger(id) {
    if (!state.ledger || state.ledger.account !== id) {
      state.ledger = { account: id, events: [], last: "", complete: false };
      state.ledgerRows = LEDGER_ROWS_STEP;
    }
    const l = state.ledger;
    for (let page = 0; page < LEDGER_PAGES_PER_LOAD; page++) {
      const q = "?limit=" + LEDGER_PAGE + (l.last ? "&after=" + enc(l.last) : "");
      const { data } = await api("GET", accountPath(id, "/ledger") + q);
      if (state.ledger !== l) return;
      const events = data.data || [];
      l.events.push(...events);
      if (events.length > 0) l.last = events[events.length - 1].id;
      l.complete = !data.has_more;
      if (l.complete) break;
    }
    renderLedger();
    renderChart();
  }

  function eventDetails(ev) {
    const parts = [];
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") parts.push(k + "=" + v); };
    add("model", ev.model);
    add("endpoint", ev.endpoint);
    add("prompt", ev.prompt_tokens);
    add("completion", ev.completion_tokens);
    if (ev.cached_tokens) add("cached", ev.cached_tokens);
    if (ev.reasoning_tokens) add("reasoning", ev.reasoning_tokens);
    if (ev.token_source === "local") add("tokens", "local");
    if (ev.cost !== undefined) add("cost", money(ev.cost));
    if (ev.to_debt && parseMicros(ev.to_debt) > 0n) add("to_debt", money(ev.to_debt));
    add("grant", ev.grant_id);
    add("request", ev.request_id);
    add("note", ev.note);
    return parts.join("  ");
  }

  function renderLedger() {
    const events = state.ledger.events;
    const shown = events.slice(Math.max(0, events.length - state.ledgerRows)).reverse();
    const rows = shown.map((ev) => el("tr", { "data-event": ev.id, "data-type": ev.type },
      el("td", { text: formatTime(ev.at) }),
      el("td", { "data-field": "type", text: ev.type }),
      moneyCell(ev.amount, "amount"),
      moneyCell(ev.balance_after, "balance_after"),
      el("td", { class: "details", text: eventDetails(ev) })));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No events yet." })));
    $("ledger").tBodies[0].replaceChildren(...rows);
    $("ledger-more").hidden = events.length <= state.ledgerRows;
  }

  // ---- the chart: spend per day by model, from the ledger's usage events -----

  // dailySpend sums usage costs per UTC day and model over the given days.
  function dailySpend(events, days) {
    const inRange = new Set(days);
    const byDay = new Map(days.map((d) => [d, new Map()]));
    const totals = new Map();
    for (const ev of events) {
      if (ev.type !== "usage" || ev.cost === undefined) continue;
      const day = dayOf(ev.at);
      if (!inRange.has(day)) continue;
      const cost = parseMicros(ev.cost);
      const model = ev.model || "(none)";
      const m = byDay.get(day);
      m.set(model, (m.get(model) || 0n) + cost);
      totals.set(model, (totals.get(model) || 0n) + cost);
    }
    return { byDay, totals };
  }

  function renderChart() {
    const days = lastDays(CHART_DAYS);
    const { byDay, totals } = dailySpend(state.ledger.events, days);
    // The biggest spenders get their own colour; the rest share one.
    const models = [...totals.keys()].sort((a, b) => (totals.get(b) > totals.get(a) ? 1 : totals.get(b) < totals.get(a) ? -1 : a.localeCompare(b)));
    const own = models.slice(0, models.length > MAX_SERIES + 1 ? MAX_SERIES : models.length);
    const series = (model) => (own.includes(model) ? model : "other models");
    const seriesNames = own.concat(models.length > own.length ? ["other models"] : []);

    const W = 900, H = 240, left = 70, right = 10, top = 10, bottom = 28;
    const plotW = W - left - right, plotH = H - top - bottom;
    let max = 0n;
    for (const m of byDay.values()) {
      let sum = 0n;
      for (const v of m.values()) sum += v;
      if (sum > max) max = sum;
    }
    const top_ = niceCeil(max); // the axis ends at a round amount
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Spend per day by model", "data-max": max.toString() });
    const y = (v) => top + plotH - (top_ === 0n ? 0 : Number(v) / Number(top_) * plotH);
    for (const [i, v] of [0n, top_ / 4n, top_ / 2n, (top_ * 3n) / 4n, top_].entries()) {
      if (i > 0 && top_ === 0n) break;
      const gy = y(v);
      root.append(svg("line", { class: i === 0 ? "axis" : "grid", x1: left, x2: W - right, y1: gy, y2: gy }));
      if (i % 2 === 0) root.append(svg("text", { x: left - 6, y: gy + 4, "text-anchor": "end" }, shortMoney(v)));
    }
    const slot = plotW / days.length, barW = Math.max(2, slot * 0.7);
    days.forEach((day, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const parts = new Map();
      for (const [model, v] of byDay.get(day)) parts.set(series(model), (parts.get(series(model)) || 0n) + v);
      let acc = 0n;
      for (const name of seriesNames) {
        const v = parts.get(name);
        if (!v) continue;
        const y0 = y(acc), y1 = y(acc + v);
        acc += v;
        const rect = svg("rect", { class: "c" + seriesNames.indexOf(name), x: x.toFixed(1), y: y1.toFixed(1), width: barW.toFixed(1),
          height: Math.max(0.5, y0 - y1).toFixed(1), "data-day": day, "data-model": name, "data-micros": v.toString() });
        rect.append(svg("title", {}, day + "  " + name + ": " + formatMicros(v)));
        root.append(rect);
      }
      if (i % 5 === (days.length - 1) % 5) {
        root.append(svg("text", { x: (x + barW / 2).toFixed(1), y: H - 8, "text-anchor": "middle" }, day.slice(5)));
      }
    });
    $("chart").replaceChildren(root);

    const legend = seriesNames.map((name, i) => {
      let total = 0n;
      for (const [model, v] of totals) if (series(model) === name) total += v;
      const sw = svg("svg", { viewBox: "0 0 10 10" });
      sw.append(svg("rect", { class: "c" + i, width: 10, height: 10, rx: 2 }));
      return el("li", { "data-model": name }, sw, name + " " + formatMicros(total));
    });
    $("chart-legend").replaceChildren(...legend);
    const l = state.ledger;
    $("chart-note").textContent = seriesNames.length === 0 ? "No usage in the last " + CHART_DAYS + " days."
      : l.complete ? "" : "Still reading the ledger (" + l.events.length + " events so far); the chart fills in as it loads.";
  }

  // niceCeil rounds a positive amount up to 1, 2 or 5 times a power of ten
  // (of micro-USD), then to a multiple of 4 so the quarter grid lines are exact.
  function niceCeil(v) {
    if (v <= 0n) return 0n;
    let p = 1n;
    while (p * 10n < v) p *= 10n;
    for (const m of [1n, 2n, 5n, 10n]) {
      if (m * p >= v) return ((m * p + 3n) / 4n) * 4n;
    }
    return v;
  }

  // ---- forms -----------------------------------------------------------------

  function randomKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "dash-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function topUp(ev) {
    ev.preventDefault();
    const id = state.current;
    const amount = $("topup-amount").value.trim();
    const date = $("topup-expires").value;
    if (!/^\d+(\.\d{1,6})?$/.test(amount)) {
      showResult("topup-result", "Enter an amount such as 25.00 (at most six decimals).", false);
      return;
    }
    const body = { amount };
    if (date) body.expires_at = date + "T00:00:00Z";
    // The same Idempotency-Key for a retry of the same top-up, so a request that
    // failed on the way back cannot credit twice; a new key for anything else.
    const fingerprint = id + "\n" + JSON.stringify(body);
    if (!state.pendingTopUp || state.pendingTopUp.fingerprint !== fingerprint) {
      state.pendingTopUp = { fingerprint, key: randomKey() };
    }
    const button = ev.submitter || ev.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { status, data } = await api("POST", accountPath(id, "/credits"), body, { "Idempotency-Key": state.pendingTopUp.key });
      state.pendingTopUp = null;
      const repaid = parseMicros(data.debt_repaid) > 0n ? "; " + money(data.debt_repaid) + " paid debt" : "";
      showResult("topup-result", (status === 200 ? "Already added: " : "Added ") + money(data.grant.amount) +
        repaid + ". Balance now " + money(data.balance_after) + ".", true);
      $("topup-amount").value = "";
      $("topup-expires").value = "";
      await refresh();
    } catch (e) {
      if (e.status >= 400 && e.status < 500) state.pendingTopUp = null; // a definite no: a new try is a new top-up
      showResult("topup-result", "Not added: " + describe(e), false);
    } finally {
      button.disabled = false;
    }
  }

  async function createKey(ev) {
    ev.preventDefault();
    const id = state.current;
    const button = ev.submitter || ev.target.querySelector("button[type=submit]");
    button.disabled = true;
    hideNewKey();
    try {
      const { data } = await api("POST", accountPath(id, "/keys"), { name: $("key-name").value.trim() });
      $("new-key-value").textContent = data.key;
      $("new-key").hidden = false;
      $("key-name").value = "";
      showResult("key-result", "Created key " + data.id + ".", true);
      const keys = await api("GET", accountPath(id, "/keys"));
      renderKeys(keys.data.data || []);
    } catch (e) {
      showResult("key-result", "Not created: " + describe(e), false);
    } finally {
      button.disabled = false;
    }
  }

  // The secret is on screen only until the operator is done with it.
  function hideNewKey() {
    $("new-key-value").textContent = "";
    $("new-key").hidden = true;
  }

  async function copyKey() {
    const text = $("new-key-value").textContent;
    try {
      await navigator.clipboard.writeText(text);
      showResult("key-result", "Copied.", true);
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($("new-key-value"));
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      showResult("key-result", "Selected: press Ctrl-C (or ⌘-C) to copy.", true);
    }
  }

  // ---- routing and refresh ---------------------------------------------------

  function routeAccount() {
    const m = /^#\/accounts\/(.+)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (_) { return null; }
  }

  async function route() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    const id = routeAccount();
    if (id !== state.current) {
      hideNewKey();
      $("topup-result").textContent = "";
      $("key-result").textContent = "";
      state.pendingTopUp = null;
    }
    state.current = id;
    for (const tr of document.querySelectorAll("#accounts tr[data-account]")) tr.classList.toggle("selected", tr.dataset.account === id);
    $("account-view").hidden = !id;
    if (!id) return;
    try {
      await loadAccount(id);
      setStatus("Updated " + new Date().toISOString().slice(11, 19) + " UTC");
    } catch (e) {
      if (e.status !== 401) setStatus("Account " + id + ": " + describe(e), true);
    }
  }

  async function refresh() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    if (state.busy) {
      state.again = true; // e.g. a top-up during an automatic refresh: show its effect too
      return;
    }
    state.busy = true;
    try {
      await loadAccounts();
      if (state.current) await loadAccount(state.current);
      setStatus("Updated " + new Date().toISOString().slice(11, 19) + " UTC");
    } catch (e) {
      if (e.status !== 401) setStatus(describe(e), true);
    } finally {
      state.busy = false;
    }
    if (state.again) {
      state.again = false;
      await refresh();
    }
  }

  function start() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (token) signIn(token);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", refresh);
    $("topup-form").addEventListener("submit", topUp);
    $("key-form").addEventListener("submit", createKey);
    $("copy-key").addEventListener("click", copyKey);
    $("hide-key").addEventListener("click", hideNewKey);
    $("ledger-more").addEventListener("click", () => { state.ledgerRows += LEDGER_ROWS_STEP; renderLedger(); });
    window.addEventListener("hashchange", route);
    setInterval(() => {
      if ($("live").checked && document.visibilityState === "visible") refresh();
    }, REFRESH_MS);

    if (sessionStorage.getItem(TOKEN_KEY)) signIn(sessionStorage.getItem(TOKEN_KEY));
    else showLogin("");
  }

  start();
})();
