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
  const ACCOUNTS_PAGE = 50;        // accounts per page of the search (the server scans a bounded part per request)
  const RECENT_ROWS = 25;          // requests in the recent log across accounts
  const LEDGER_PAGE = 100;         // events per request, newest first
  const LEDGER_MAX_EVENTS = 1000;  // events kept in memory (and rows shown) at most
  const CHART_REFRESH_MS = 30000;  // the chart's usage report reads 30 days of ledger on the server
  const CHART_DAYS = 30;
  const MAX_SERIES = 8;            // more models than this are drawn as "other models"

  const $ = (id) => document.getElementById(id);

  // ---- state ---------------------------------------------------------------

  const state = {
    accounts: [],         // the page of the account search on screen
    search: { q: "", filter: "", below: "" }, // the search in force
    cursors: [""],        // the cursor of each page reached: cursors[i] reads page i
    page: 0,              // the page on screen
    nextCursor: "",       // the page after this one ("" at the end)
    scanned: 0,           // accounts the server examined for this page
    total: 0,             // accounts in the index
    before: 0,            // accounts shown on the pages before this one
    keyNames: new Map(),  // the open account's key id -> name
    arFilled: null,       // the account whose auto-recharge form was filled
    revoking: null,       // the key id whose revocation waits for a confirmation
    editingKey: null,     // the key the edit form shows, as last loaded
    current: null,        // the open account's id
    ledger: null,         // {account, events (newest first, ≤ LEDGER_MAX_EVENTS), older: cursor, hasOlder}
    chart: null,          // {account, at: ms, days, rows}: the usage report by day and model
    busy: false,          // a refresh is in flight
    again: false,         // another refresh was asked for meanwhile
    pendingTopUp: null,   // {fingerprint, key}: reused when a failed request is retried unchanged
    pendingAdjust: null,  // the same for the adjust form
    adjustConfirm: null,  // {account, body}: a claw-back waiting for the operator's yes
    me: null,             // GET /whoami: the token's name and what it may do
    account: null,        // the open account as last loaded
    formAccount: null,    // the account the settings form was filled from
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
    return iso.slice(0, 19).replace("T", " ") + " UTC";
  }

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
      this.problems = (detail && detail.problems) || [];
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
    $("overview-view").hidden = true;
    $("recent-view").hidden = true;
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
    state.me = null;
    state.current = null; // what was typed for one token is not shown to the next
    state.account = null;
    state.formAccount = null;
    $("whoami").hidden = true;
    $("whoami").textContent = "";
    state.accounts = [];
    state.cursors = [""];
    state.page = 0;
    state.arFilled = null;
    state.revoking = null;
    state.ledger = null;
    state.chart = null;
    state.pendingAdjust = null;
    hideAdjustConfirm();
    hideNewKey();
    showLogin(message);
  }

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await loadWhoAmI();
      await loadAccounts();
    } catch (e) {
      if (e.status !== 401) signOut("Sign-in failed: " + describe(e));
      return;
    }
    $("login-view").hidden = true;
    $("accounts-view").hidden = false;
    $("overview-view").hidden = false;
    $("recent-view").hidden = false;
    $("controls").hidden = false;
    $("token").value = "";
    await route();
    try {
      await Promise.all([loadOverview(), loadRecent()]);
    } catch (_) { /* a refused token signs out; the next refresh tries again */ }
  }

  // ---- what the token may do ------------------------------------------------

  // loadWhoAmI asks who the token is and what it may do, and turns off the
  // forms it may not use (the server refuses them anyway: 403 insufficient_scope).
  async function loadWhoAmI() {
    const { data } = await api("GET", API + "/whoami");
    state.me = data;
    const scopes = (data.scopes || []).join(", ") || "none";
    $("whoami").textContent = "Signed in as " + data.name + " (" + scopes + ")";
    $("whoami").hidden = false;
    applyScopes();
  }

  const can = (scope) => !!(state.me && state.me.can && state.me.can[scope]);

  function applyScopes() {
    for (const form of document.querySelectorAll("form[data-scope]")) {
      const scope = form.dataset.scope;
      const allowed = can(scope);
      form.classList.toggle("denied", !allowed);
      form.dataset.allowed = allowed ? "yes" : "no";
      for (const c of form.querySelectorAll("input, select, button")) c.disabled = !allowed;
      const note = form.querySelector(".scope-note");
      if (note) {
        note.hidden = allowed;
        note.textContent = allowed ? "" : "This token (" + (state.me ? state.me.name : "?") + ") may not do this: it needs the " + scope + " scope.";
      }
    }
  }

  // ---- accounts: a search paged on the server ------------------------------

  // searchQuery is the query string of the search in force, for page i.
  function searchQuery(i) {
    const q = new URLSearchParams({ limit: String(ACCOUNTS_PAGE) });
    const s = state.search;
    if (s.q) q.set("q", s.q);
    if (s.filter === "debt") q.set("in_debt", "true");
    if (s.filter === "below" && s.below) q.set("balance_below", s.below);
    if (state.cursors[i]) q.set("cursor", state.cursors[i]);
    return q.toString();
  }

  // loadAccounts reads the page on screen again: one bounded request, however
  // many accounts there are (the server scans at most a few thousand ids).
  async function loadAccounts() {
    const { data } = await api("GET", API + "/accounts?" + searchQuery(state.page));
    state.accounts = data.data || [];
    state.nextCursor = data.has_more ? data.next_cursor : "";
    state.scanned = data.scanned || 0;
    state.total = data.total_accounts || 0;
    renderAccounts();
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
        el("td", { "data-field": "next_expiry", text: a.next_expiry ? formatTime(a.next_expiry) : "–" }),
        el("td", { "data-field": "auto_recharge", text: a.auto_recharge ? "on" : "off" }));
      tr.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") location.hash = "#/accounts/" + enc(a.id);
      });
      return tr;
    });
    body.replaceChildren(...rows);
    const searching = state.search.q || state.search.filter;
    $("accounts-total").textContent = "(" + state.total.toLocaleString("en-US") + " in all)";
    const empty = state.accounts.length === 0;
    $("accounts-empty").hidden = !empty;
    $("accounts-empty").textContent = state.total === 0 ? "No accounts yet: create one above, or with creditgate accounts create ID."
      : state.nextCursor ? "None in the " + state.scanned.toLocaleString("en-US") + " accounts scanned so far: Next › scans further."
      : searching ? "No account matches." : "No accounts on this page.";
    const more = state.page > 0 || state.nextCursor !== "";
    $("accounts-pager").hidden = !more;
    const from = state.before + 1, to = state.before + state.accounts.length;
    $("accounts-range").textContent = (empty ? "none" : from + "–" + to) + (searching ? " found" : " of " + state.total);
    $("accounts-prev").disabled = state.page === 0;
    $("accounts-next").disabled = state.nextCursor === "";
  }

  // Pages go forward by the server's cursor and back by the cursors kept.
  const shownBefore = [0]; // shownBefore[i]: accounts on the pages before page i
  async function turnAccountsPage(delta) {
    if (delta > 0) {
      if (!state.nextCursor) return;
      shownBefore[state.page + 1] = state.before + state.accounts.length;
      state.cursors[state.page + 1] = state.nextCursor;
      state.cursors.length = state.page + 2;
    }
    state.page = Math.max(0, state.page + delta);
    state.before = shownBefore[state.page] || 0;
    try {
      await loadAccounts();
    } catch (e) {
      if (e.status !== 401) setStatus("Accounts: " + describe(e), true);
    }
  }

  async function search(ev) {
    ev.preventDefault();
    const filter = $("search-filter").value;
    const below = $("search-below").value.trim();
    if (filter === "below" && !/^-?\d+(\.\d{1,6})?$/.test(below)) {
      setStatus("Enter the balance to search below, such as 5.00.", true);
      return;
    }
    state.search = { q: $("search-q").value.trim(), filter, below };
    state.cursors = [""];
    state.page = 0;
    state.before = 0;
    try {
      await loadAccounts();
      setStatus("Updated " + new Date().toISOString().slice(11, 19) + " UTC");
    } catch (e) {
      if (e.status !== 401) setStatus("Search: " + describe(e), true);
    }
  }

  function filterChanged() {
    $("search-below").hidden = $("search-filter").value !== "below";
  }

  async function createAccount(ev) {
    ev.preventDefault();
    const id = $("create-id").value.trim();
    const tier = $("create-tier").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) {
      showResult("create-result", "An account id is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.", false);
      return;
    }
    const button = ev.submitter || ev.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const body = { id };
      if (tier) body.tier = tier;
      const { data } = await api("POST", API + "/accounts", body);
      showResult("create-result", "Created account " + data.id + " (" + data.tier + ").", true);
      $("create-id").value = "";
      $("create-tier").value = "";
      location.hash = "#/accounts/" + enc(data.id);
      await refresh();
    } catch (e) {
      showResult("create-result", "Not created: " + describe(e), false);
    } finally {
      button.disabled = false;
    }
  }

  // ---- across accounts: the overview and the recent requests ---------------

  async function loadOverview() {
    let data;
    try {
      ({ data } = await api("GET", API + "/overview?top=5"));
    } catch (e) {
      if (e.status === 401) throw e;
      $("overview-summary").replaceChildren();
      $("overview-note").textContent = "No overview: " + describe(e);
      return;
    }
    const item = (label, field, value, cls) => el("div", {}, el("dt", { text: label }),
      el("dd", { "data-field": field, class: cls || "", text: value }));
    const count = (m) => Object.values(m || {}).reduce((a, b) => a + b, 0);
    const byReason = (m) => Object.entries(m || {}).filter(([, n]) => n > 0).map(([r, n]) => r + " " + n).join(", ") || "none";
    $("overview-summary").replaceChildren(
      item("Spend today", "spend_today", money(data.today.spend)),
      item("Spend this month", "spend_month", money(data.month.spend)),
      item("Requests today", "requests_today", data.today.requests.toLocaleString("en-US")),
      item("429s today", "denied_today", String(count(data.denied_today))),
      item("429s by reason", "denied_reasons", byReason(data.denied_today), "small"),
      item("Auto-recharge failures", "recharge_failures", String(count(data.recharge_failures_today)) + " today, " +
        count(data.recharge_failures_month) + " this month", "small"));
    const top = (id, list) => {
      const rows = (list || []).map((a) => el("tr", { "data-account": a.account },
        el("td", {}, el("a", { href: "#/accounts/" + enc(a.account), text: a.account })),
        moneyCell(a.spend, "spend")));
      if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "2", class: "muted", text: "No spend yet." })));
      $(id).tBodies[0].replaceChildren(...rows);
    };
    top("top-today", data.top_today);
    top("top-month", data.top_month);
    $("overview-note").textContent = "As of " + formatTime(data.as_of) + ". Figures of the console's aggregate, written after each " +
      "request settles: a dashboard's, not the ledger's (the account pages and reports are).";
  }

  async function loadRecent() {
    let data;
    try {
      ({ data } = await api("GET", API + "/requests?limit=" + RECENT_ROWS));
    } catch (e) {
      if (e.status === 401) throw e;
      $("recent").tBodies[0].replaceChildren();
      $("recent-note").textContent = "No request log: " + describe(e);
      return;
    }
    const rows = (data.data || []).map((r) => el("tr", { "data-request": r.request_id || "", "data-outcome": r.outcome },
      el("td", { text: formatTime(r.at) }),
      el("td", { "data-field": "account" }, el("a", { href: "#/accounts/" + enc(r.account), text: r.account })),
      el("td", { "data-field": "key", class: r.key_name ? "" : "mono", text: r.key_name || r.key_id || "–" }),
      el("td", { text: r.model || "–" }),
      el("td", { "data-field": "outcome", class: r.outcome === "denied" ? "denied" : "", text: r.outcome === "denied" ? "429 " + r.reason : "settled" }),
      el("td", { class: "num", text: r.outcome === "denied" ? "–" : r.prompt_tokens + " / " + r.completion_tokens }),
      moneyCell(r.cost, "cost"),
      moneyCell(r.balance_after, "balance_after")));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "8", class: "muted", text: "No requests yet." })));
    $("recent").tBodies[0].replaceChildren(...rows);
    $("recent-note").textContent = "";
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

  // ---- one account -----------------------------------------------------------

  async function loadAccount(id) {
    const [acct, keys] = await Promise.all([api("GET", accountPath(id)), api("GET", accountPath(id, "/keys"))]);
    if (state.current !== id) return; // the operator moved on meanwhile
    renderAccount(acct.data);
    fillAutoRecharge(acct.data);
    renderKeys(keys.data.data || []);
    await Promise.all([loadLedger(id), loadChart(id)]);
  }

  function renderAccount(a) {
    state.account = a;
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
      item("Tier", "tier", a.tier + (a.tier_pinned ? " (pinned)" : ""), "small"),
      item("Status", "status", a.status || "active", "small" + (a.status === "suspended" ? " neg" : "")),
      item("Paid", "paid_total", money(a.paid_total || "0") + (a.first_paid_at ? " since " + formatTime(a.first_paid_at) : ""), "small"),
      item("Spend limit", "spend_limit", a.spend_limit ? money(a.spend_limit.monthly) + "/month" +
        (parseMicros(a.spend_limit.alert_at) > 0n ? ", alert at " + money(a.spend_limit.alert_at) : "") : "none", "small"),
      item("Next expiry", "next_expiry", formatTime(nextExpiry(a)), "small"),
      item("Auto-recharge", "auto_recharge", auto, "small"),
      item("Created", "created_at", formatTime(a.created_at), "small"),
      ...[["Name", "name"], ["Email", "email"], ["External id", "external_id"]].filter(([, f]) => a[f]).map(([l, f]) => item(l, f, a[f], "small")));
    if (state.formAccount !== a.id) fillAccountForm(a);
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
    state.keyNames = new Map(keys.map((k) => [k.id, k.name]));
    const rows = keys.map((k) => {
      const actions = el("td", { "data-field": "actions" });
      if (state.revoking === k.id) {
        const yes = el("button", { type: "button", class: "danger", "data-action": "confirm-revoke", text: "Revoke " + (k.name || k.id) + "?" });
        const no = el("button", { type: "button", "data-action": "cancel-revoke", text: "Cancel" });
        yes.addEventListener("click", () => revokeKey(k.id));
        no.addEventListener("click", () => { state.revoking = null; renderKeys(keys); $("keys-result").textContent = ""; });
        actions.append(yes, " ", no);
      } else {
        const edit = el("button", { type: "button", "data-action": "edit", text: "Edit" });
        edit.disabled = !can("keys");
        edit.addEventListener("click", () => openKeyEdit(k));
        const b = el("button", { type: "button", "data-action": "revoke", text: "Revoke" });
        b.addEventListener("click", () => { state.revoking = k.id; renderKeys(keys); });
        actions.append(edit, " ", b);
      }
      return el("tr", { "data-key": k.id },
        el("td", { class: "mono", text: k.id }),
        el("td", { text: k.name || "–" }),
        el("td", { class: "mono", text: k.hint }),
        el("td", { text: formatTime(k.created_at) }),
        el("td", { "data-field": "limit", text: k.limit ? k.limit + " " + k.limit_reset : "none" }),
        el("td", { "data-field": "expires", text: k.expires_at ? formatTime(k.expires_at) : "never" }),
        el("td", { "data-field": "models", text: k.models && k.models.length > 0 ? k.models.join(", ") : "all" }),
        el("td", { "data-field": "rate", text: (k.rpm || 0) + "/" + (k.tpm || 0) }),
        el("td", { "data-field": "state", class: k.disabled ? "error" : "", text: k.disabled ? "disabled" : "enabled" }),
        actions);
    });
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "10", class: "muted", text: "No keys." })));
    $("keys").tBodies[0].replaceChildren(...rows);
  }

  // modelList reads a comma-separated model list (empty: none).
  const modelList = (v) => v.split(",").map((m) => m.trim()).filter((m) => m !== "");

  // openKeyEdit shows key k's settings in the edit form.
  function openKeyEdit(k) {
    state.editingKey = k;
    $("ke-id").textContent = k.id;
    $("ke-name").value = k.name || "";
    $("ke-limit").value = k.limit || "";
    $("ke-limit-reset").value = k.limit_reset || "never";
    $("ke-expires").value = k.expires_at ? k.expires_at.slice(0, 10) : "";
    $("ke-models").value = (k.models || []).join(", ");
    $("ke-rpm").value = String(k.rpm || 0);
    $("ke-tpm").value = String(k.tpm || 0);
    $("ke-disabled").checked = !!k.disabled;
    $("key-edit-problems").hidden = true;
    $("key-edit-result").textContent = "";
    $("key-edit-form").hidden = false;
  }

  // keyChanges is the PATCH body: the fields that differ from key k.
  function keyChanges(k) {
    const body = {};
    const name = $("ke-name").value.trim();
    if (name !== (k.name || "")) body.name = name;
    const limit = $("ke-limit").value.trim() || "0";
    const same = (x, y) => { try { return parseMicros(x) === parseMicros(y); } catch (_) { return false; } };
    if (!same(limit, k.limit || "0")) body.limit = limit;
    if ($("ke-limit-reset").value !== (k.limit_reset || "never")) body.limit_reset = $("ke-limit-reset").value;
    const date = $("ke-expires").value;
    const was = k.expires_at ? k.expires_at.slice(0, 10) : "";
    if (date !== was) body.expires_at = date ? date + "T00:00:00Z" : null;
    const models = modelList($("ke-models").value);
    if (models.join(",") !== (k.models || []).join(",")) body.models = models;
    for (const f of ["rpm", "tpm"]) {
      const v = $("ke-" + f).value.trim() || "0";
      if (v !== String(k[f] || 0)) body[f] = /^\d+$/.test(v) ? Number(v) : v;
    }
    if ($("ke-disabled").checked !== !!k.disabled) body.disabled = $("ke-disabled").checked;
    return body;
  }

  async function saveKey(ev) {
    ev.preventDefault();
    const k = state.editingKey;
    const id = state.current;
    if (!k) return;
    const problems = $("key-edit-problems");
    problems.hidden = true;
    problems.replaceChildren();
    const body = keyChanges(k);
    if (Object.keys(body).length === 0) {
      showResult("key-edit-result", "Nothing to save: no field changed.", true);
      return;
    }
    const button = $("key-edit-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { data } = await api("PATCH", accountPath(id, "/keys/" + enc(k.id)), body);
      openKeyEdit(data);
      showResult("key-edit-result", "Saved; every proxy applies it within the key cache's TTL.", true);
      const keys = await api("GET", accountPath(id, "/keys"));
      if (state.current === id) renderKeys(keys.data.data || []);
    } catch (e) {
      showResult("key-edit-result", "Not saved: " + describe(e), false);
      const list = e.problems.length > 0 ? e.problems : (e.param ? [{ param: e.param, message: e.message }] : []);
      if (list.length > 0) {
        problems.replaceChildren(...list.map((p) => el("li", { "data-param": p.param, text: p.message })));
        problems.hidden = false;
      }
    } finally {
      button.disabled = !can("keys");
    }
  }

  function closeKeyEdit() {
    state.editingKey = null;
    $("key-edit-form").hidden = true;
  }

  // revokeKey revokes a key after the operator confirmed it in its row. Apps
  // holding it are refused within auth.key_cache_ttl.
  async function revokeKey(keyID) {
    const id = state.current;
    state.revoking = null;
    try {
      await api("DELETE", accountPath(id, "/keys/" + enc(keyID)));
      showResult("keys-result", "Revoked " + (state.keyNames.get(keyID) || keyID) + ".", true);
    } catch (e) {
      showResult("keys-result", "Not revoked: " + describe(e), false);
    }
    try {
      const keys = await api("GET", accountPath(id, "/keys"));
      if (state.current === id) renderKeys(keys.data.data || []);
    } catch (_) { /* the next refresh shows the keys */ }
  }

  // fillAutoRecharge puts the account's settings in the form once per account
  // opened (and after a save), never under the operator's typing.
  function fillAutoRecharge(a, force) {
    if (!force && state.arFilled === a.id) return;
    state.arFilled = a.id;
    const ar = a.auto_recharge || {};
    const plain = (m) => (m && parseMicros(m) > 0n ? m.replace(/\.?0+$/, "") : "");
    $("ar-enabled").checked = !!ar.enabled;
    $("ar-threshold").value = plain(ar.threshold);
    $("ar-amount").value = plain(ar.amount);
    $("ar-limit").value = plain(ar.monthly_limit);
  }

  async function saveAutoRecharge(ev) {
    ev.preventDefault();
    const id = state.current;
    const enabled = $("ar-enabled").checked;
    const body = { enabled };
    for (const [field, input] of [["threshold", "ar-threshold"], ["amount", "ar-amount"], ["monthly_limit", "ar-limit"]]) {
      const v = $(input).value.trim();
      if (v === "") {
        if (enabled) { showResult("ar-result", "Enter every amount to turn auto-recharge on.", false); return; }
        continue;
      }
      if (!/^\d+(\.\d{1,6})?$/.test(v)) { showResult("ar-result", "Amounts are decimals such as 20.00.", false); return; }
      body[field] = v;
    }
    const button = ev.submitter || ev.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { data } = await api("PUT", accountPath(id, "/auto-recharge"), body);
      showResult("ar-result", data.enabled ? "Saved: below " + money(data.threshold) + " buy " + money(data.amount) +
        ", at most " + money(data.monthly_limit) + " a month." : "Saved: auto-recharge is off.", true);
      state.arFilled = null;
      await refresh();
    } catch (e) {
      showResult("ar-result", "Not saved: " + describe(e), false);
    } finally {
      button.disabled = false;
    }
  }

  // compareIDs orders ledger event ids ("<ms>-<seq>").
  function compareIDs(a, b) {
    const re = /^(\d+)-(\d+)$/;
    const x = re.exec(a), y = re.exec(b);
    if (!x || !y) return a < b ? -1 : a > b ? 1 : 0;
    const d = BigInt(x[1]) - BigInt(y[1]) || BigInt(x[2]) - BigInt(y[2]);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }

  // loadLedger reads the newest page of the ledger (newest first) and puts what
  // the page has not seen yet on top of what it holds, so older pages loaded
  // with "Load older events" stay. At most LEDGER_MAX_EVENTS are kept: the
  // oldest are dropped first.
  async function loadLedger(id) {
    if (!state.ledger || state.ledger.account !== id) {
      state.ledger = { account: id, events: [], older: "", hasOlder: false };
    }
    const l = state.ledger;
    const { data } = await api("GET", accountPath(id, "/ledger/recent") + "?limit=" + LEDGER_PAGE);
    if (state.ledger !== l) return;
    const page = data.data || [];
    const newest = l.events.length > 0 ? l.events[0].id : null;
    const fresh = newest === null ? page : page.filter((ev) => compareIDs(ev.id, newest) > 0);
    if (newest === null || (fresh.length === page.length && data.has_more)) {
      // The first read, or more than a page happened since the last: this page
      // is all that is known to be contiguous.
      l.events = page;
      l.older = data.next || "";
      l.hasOlder = !!data.has_more;
    } else {
      l.events = fresh.concat(l.events);
    }
    trimLedger(l);
    renderLedger();
  }

  function trimLedger(l) {
    if (l.events.length > LEDGER_MAX_EVENTS) {
      l.events.length = LEDGER_MAX_EVENTS;
      l.older = l.events[LEDGER_MAX_EVENTS - 1].id;
      l.hasOlder = true;
    }
  }

  // loadOlder appends the page of events before the oldest one held.
  async function loadOlder() {
    const l = state.ledger;
    if (!l || !l.hasOlder || l.events.length >= LEDGER_MAX_EVENTS) return;
    const before = l.older;
    const button = $("ledger-more");
    button.disabled = true;
    try {
      const limit = Math.min(LEDGER_PAGE, LEDGER_MAX_EVENTS - l.events.length);
      const { data } = await api("GET", accountPath(l.account, "/ledger/recent") + "?limit=" + limit + "&before=" + enc(before));
      if (state.ledger !== l || l.older !== before) return; // a refresh started over meanwhile
      l.events = l.events.concat((data.data || []).filter((ev) => compareIDs(ev.id, before) < 0));
      l.older = data.next || "";
      l.hasOlder = !!data.has_more;
      trimLedger(l);
      renderLedger();
    } catch (e) {
      if (e.status !== 401) setStatus("Older events: " + describe(e), true);
    } finally {
      button.disabled = false;
    }
  }

  function eventDetails(ev) {
    const parts = [];
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") parts.push(k + "=" + v); };
    if (ev.key_id) add("key", state.keyNames.get(ev.key_id) || ev.key_id);
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
    if (ev.tier_to) add("tier", (ev.tier_from || "–") + " → " + ev.tier_to);
    for (const c of ev.changes || []) add(c.field, (c.from || "–") + " → " + (c.to || "–"));
    add("note", ev.note);
    add("by", ev.actor);
    return parts.join("  ");
  }

  function renderLedger() {
    const l = state.ledger;
    const rows = l.events.map((ev) => el("tr", { "data-event": ev.id, "data-type": ev.type },
      el("td", { text: formatTime(ev.at) }),
      el("td", { "data-field": "type", text: ev.type }),
      moneyCell(ev.amount, "amount"),
      moneyCell(ev.balance_after, "balance_after"),
      el("td", { class: "details", text: eventDetails(ev) })));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No events yet." })));
    $("ledger").tBodies[0].replaceChildren(...rows);
    const full = l.events.length >= LEDGER_MAX_EVENTS;
    $("ledger-more").hidden = !l.hasOlder || full;
    $("ledger-note").textContent = l.hasOlder && full ? "Showing the newest " + l.events.length +
      " events. For the rest, export the ledger: creditgate ledger export " + l.account + " --format csv" : "";
  }

  // ---- the chart: spend per day by model, from the usage report -------------

  // loadChart reads the usage report by day and model for the chart's days: the
  // server sums the ledger, the page holds one row per day and model. Usage
  // changes the chart little from one refresh to the next, so it is read again
  // only after CHART_REFRESH_MS.
  async function loadChart(id) {
    const c = state.chart;
    if (c && c.account === id && Date.now() - c.at < CHART_REFRESH_MS) return;
    const days = lastDays(CHART_DAYS);
    const { data } = await api("GET", accountPath(id, "/usage") + "?group_by=day,model&from=" + days[0]);
    if (state.current !== id) return;
    state.chart = { account: id, at: Date.now(), days, rows: data.data || [] };
    renderChart();
  }

  // dailySpend sums the report's costs per UTC day and model over the given days.
  function dailySpend(rows, days) {
    const inRange = new Set(days);
    const byDay = new Map(days.map((d) => [d, new Map()]));
    const totals = new Map();
    for (const row of rows) {
      const by = row.by || {};
      const day = by.day;
      if (!inRange.has(day)) continue;
      const cost = parseMicros(row.cost);
      const model = by.model || "(none)";
      const m = byDay.get(day);
      m.set(model, (m.get(model) || 0n) + cost);
      totals.set(model, (totals.get(model) || 0n) + cost);
    }
    return { byDay, totals };
  }

  function renderChart() {
    const { days, rows } = state.chart;
    const { byDay, totals } = dailySpend(rows, days);
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
    $("chart-note").textContent = seriesNames.length === 0 ? "No usage in the last " + CHART_DAYS + " days." : "";
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

  // fillAccountForm shows account a's settings in the form; it is filled when
  // an account is opened and after a save, never by the automatic refresh,
  // which would overwrite what the operator is typing.
  function fillAccountForm(a) {
    state.formAccount = a.id;
    $("acct-tier").value = a.tier || "";
    $("acct-pinned").checked = !!a.tier_pinned;
    $("acct-status").value = a.status === "suspended" ? "suspended" : "active";
    $("acct-name").value = a.name || "";
    $("acct-email").value = a.email || "";
    $("acct-external-id").value = a.external_id || "";
    $("acct-spend-limit").value = a.spend_limit ? a.spend_limit.monthly : "";
    $("acct-alert-at").value = a.spend_limit && parseMicros(a.spend_limit.alert_at) > 0n ? a.spend_limit.alert_at : "";
  }

  // accountChanges is the PATCH body: the fields that differ from the account
  // as loaded (an unchanged field is not sent).
  function accountChanges(a) {
    const body = {};
    const text = (field, id) => { const v = $(id).value.trim(); if (v !== (a[field] || "")) body[field] = v; };
    text("tier", "acct-tier");
    if ($("acct-pinned").checked !== !!a.tier_pinned) body.tier_pinned = $("acct-pinned").checked;
    if ($("acct-status").value !== (a.status || "active")) body.status = $("acct-status").value;
    text("name", "acct-name");
    text("email", "acct-email");
    text("external_id", "acct-external-id");
    const limit = $("acct-spend-limit").value.trim() || "0";
    const alert = $("acct-alert-at").value.trim() || "0";
    const cur = a.spend_limit || { monthly: "0", alert_at: "0" };
    const same = (x, y) => { try { return parseMicros(x) === parseMicros(y); } catch (_) { return false; } };
    if (!same(limit, cur.monthly) || !same(alert, cur.alert_at)) {
      body.spend_limit = { monthly: limit };
      if (alert !== "0") body.spend_limit.alert_at = alert;
    }
    return body;
  }

  async function saveAccount(ev) {
    ev.preventDefault();
    const a = state.account;
    if (!a || a.id !== state.current) return;
    const problems = $("account-problems");
    problems.hidden = true;
    problems.replaceChildren();
    const body = accountChanges(a);
    if (Object.keys(body).length === 0) {
      showResult("account-result", "Nothing to save: no field changed.", true);
      return;
    }
    const button = $("account-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { data } = await api("PATCH", accountPath(a.id), body);
      const n = (data.events || []).length;
      showResult("account-result", n === 0 ? "Nothing changed." : "Saved; the ledger records it (" + n + (n === 1 ? " event)." : " events)."), true);
      renderAccount(data);
      fillAccountForm(data);
      await refresh();
    } catch (e) {
      showResult("account-result", "Not saved: " + describe(e), false);
      const list = e.problems.length > 0 ? e.problems : (e.param ? [{ param: e.param, message: e.message }] : []);
      if (list.length > 0) {
        problems.replaceChildren(...list.map((p) => el("li", { "data-param": p.param, text: p.message })));
        problems.hidden = false;
      }
    } finally {
      button.disabled = !can("admin");
    }
  }

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

  // readAdjustment reads the adjust form: {body, micros} (the signed amount), or
  // throws an Error saying what to fix. The server checks everything again.
  function readAdjustment() {
    const amount = $("adjust-amount").value.trim();
    const reason = $("adjust-reason").value.trim();
    const date = $("adjust-expires").value;
    if (!/^-?\d+(\.\d{1,6})?$/.test(amount)) {
      throw new Error("Enter a signed amount such as -1.50 or 2.00 (at most six decimals).");
    }
    const micros = parseMicros(amount);
    if (micros === 0n) throw new Error("The amount must not be zero: a positive one credits, a negative one takes credit back.");
    if (!reason) throw new Error("Enter a reason: it goes into the ledger.");
    const body = { amount, reason };
    if (date) {
      if (micros < 0n) throw new Error("An expiry applies only to a positive amount.");
      body.expires_at = date + "T00:00:00Z";
    }
    return { body, micros };
  }

  // adjust submits the adjust form. A positive amount is sent at once; a
  // negative one (credit taken back) first asks the operator to confirm.
  function adjust(ev) {
    ev.preventDefault();
    hideAdjustConfirm();
    const id = state.current;
    let req;
    try {
      req = readAdjustment();
    } catch (e) {
      showResult("adjust-result", e.message, false);
      return;
    }
    if (req.micros > 0n) {
      sendAdjustment(id, req.body);
      return;
    }
    state.adjustConfirm = { account: id, body: req.body };
    $("adjust-confirm-text").textContent = "Take back " + formatMicros(-req.micros) + " from " + id + "?";
    $("adjust-confirm").hidden = false;
    $("adjust-result").textContent = "";
    $("adjust-confirm-yes").focus();
  }

  function confirmAdjustment() {
    const c = state.adjustConfirm;
    hideAdjustConfirm();
    if (c && c.account === state.current) sendAdjustment(c.account, c.body);
  }

  // Any edit of the form (or a cancel) withdraws the question: the operator
  // confirms exactly the amount and account shown.
  function hideAdjustConfirm() {
    state.adjustConfirm = null;
    $("adjust-confirm").hidden = true;
    $("adjust-confirm-text").textContent = "";
  }

  // An expiry applies only to a positive amount: the field is off for a negative one.
  function adjustAmountChanged() {
    const negative = $("adjust-amount").value.trim().startsWith("-");
    if (negative) $("adjust-expires").value = "";
    $("adjust-expires").disabled = negative;
  }

  async function sendAdjustment(id, body) {
    // As for top-ups: the same Idempotency-Key for a retry of the same
    // adjustment, so one whose answer was lost cannot be made twice; a new key
    // for anything else.
    const fingerprint = id + "\n" + JSON.stringify(body);
    if (!state.pendingAdjust || state.pendingAdjust.fingerprint !== fingerprint) {
      state.pendingAdjust = { fingerprint, key: randomKey() };
    }
    const button = $("adjust-form").querySelector("button[type=submit]");
    button.disabled = true;
    showResult("adjust-result", "Sending…", true);
    try {
      const { status, data } = await api("POST", accountPath(id, "/adjustments"), body, { "Idempotency-Key": state.pendingAdjust.key });
      state.pendingAdjust = null;
      const grant = data.grant ? " (grant " + data.grant.id + ")" : "";
      const repaid = parseMicros(data.debt_repaid) > 0n ? "; " + money(data.debt_repaid) + " paid debt" : "";
      showResult("adjust-result", (status === 200 ? "Already adjusted by " : "Adjusted by ") + money(data.amount) + grant +
        repaid + ". Balance now " + money(data.balance_after) + ".", true);
      $("adjust-amount").value = "";
      $("adjust-reason").value = "";
      adjustAmountChanged();
      await refresh();
    } catch (e) {
      if (e.status >= 400 && e.status < 500) state.pendingAdjust = null; // a definite no: a new try is a new adjustment
      showResult("adjust-result", "Not adjusted: " + describe(e), false);
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
      const body = { name: $("key-name").value.trim() };
      const limit = $("key-limit").value.trim();
      if (limit) body.limit = limit;
      if ($("key-limit-reset").value !== "never") body.limit_reset = $("key-limit-reset").value;
      if ($("key-expires").value) body.expires_at = $("key-expires").value + "T00:00:00Z";
      const models = modelList($("key-models").value);
      if (models.length > 0) body.models = models;
      if ($("key-disabled").checked) body.disabled = true;
      const { data } = await api("POST", accountPath(id, "/keys"), body);
      $("new-key-value").textContent = data.key;
      $("new-key").hidden = false;
      for (const f of ["key-name", "key-limit", "key-expires", "key-models"]) $(f).value = "";
      $("key-limit-reset").value = "never";
      $("key-disabled").checked = false;
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
      $("adjust-result").textContent = "";
      $("key-result").textContent = "";
      $("account-result").textContent = "";
      $("account-problems").hidden = true;
      state.formAccount = null;
      $("keys-result").textContent = "";
      $("ar-result").textContent = "";
      state.revoking = null;
      closeKeyEdit();
      state.pendingTopUp = null;
      state.pendingAdjust = null;
      hideAdjustConfirm();
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
      await Promise.all([loadAccounts(), loadOverview(), loadRecent()]);
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
    $("account-form").addEventListener("submit", saveAccount);
    $("adjust-form").addEventListener("submit", adjust);
    $("adjust-form").addEventListener("input", hideAdjustConfirm);
    $("adjust-amount").addEventListener("input", adjustAmountChanged);
    $("adjust-confirm-yes").addEventListener("click", confirmAdjustment);
    $("adjust-confirm-no").addEventListener("click", () => {
      hideAdjustConfirm();
      $("adjust-result").textContent = "";
    });
    $("key-form").addEventListener("submit", createKey);
    $("key-edit-form").addEventListener("submit", saveKey);
    $("ke-cancel").addEventListener("click", closeKeyEdit);
    $("copy-key").addEventListener("click", copyKey);
    $("hide-key").addEventListener("click", hideNewKey);
    $("ledger-more").addEventListener("click", loadOlder);
    $("search-form").addEventListener("submit", search);
    $("search-filter").addEventListener("change", filterChanged);
    $("create-form").addEventListener("submit", createAccount);
    $("autorecharge-form").addEventListener("submit", saveAutoRecharge);
    $("accounts-prev").addEventListener("click", () => turnAccountsPage(-1));
    $("accounts-next").addEventListener("click", () => turnAccountsPage(1));
    window.addEventListener("hashchange", route);
    setInterval(() => {
      if ($("live").checked && document.visibilityState === "visible") refresh();
    }, REFRESH_MS);

    if (sessionStorage.getItem(TOKEN_KEY)) signIn(sessionStorage.getItem(TOKEN_KEY));
    else showLogin("");
  }

  start();
})();
