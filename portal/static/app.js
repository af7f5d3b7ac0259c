// The Billing page: draws the account from /billing/api/* and keeps it live by
// polling the small summary every 2 s while the tab is visible (and the usage
// when the ledger moved). Polling, not SSE: it passes every proxy and load
// balancer as plain requests, holds no connection or server goroutine per open
// tab, stops by itself in hidden tabs, and notices an ended session on the next
// tick. Money arrives as six-decimal strings and is shown as people read it
// ($4.98), the exact figure on hover (title) and in data-micros.
"use strict";

const POLL_MS = 2000;
const USAGE_MIN_MS = 4000;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const palette = ["#1f5fd1", "#e8a317", "#2e9e5b", "#c2417a", "#6b4fc8", "#0f9bb0", "#8a6d3b", "#7a8591"];
const $ = (sel) => document.querySelector(sel);

// --- money ---------------------------------------------------------------

// micros parses "4.981190" / "-0.300000" into a BigInt of micro-dollars.
function micros(s) {
  s = String(s);
  const neg = s.startsWith("-");
  if (neg) s = s.slice(1);
  const [whole, frac = ""] = s.split(".");
  const m = BigInt(whole || "0") * 1000000n + BigInt((frac + "000000").slice(0, 6));
  return neg ? -m : m;
}

function groupThousands(n) {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// exactUSD is every digit: "$4.981190".
function exactUSD(m) {
  const neg = m < 0n;
  if (neg) m = -m;
  return (neg ? "-$" : "$") + groupThousands(m / 1000000n) + "." + (m % 1000000n).toString().padStart(6, "0");
}

// usd is to the cent, half away from zero: "$4.98"; a non-zero amount under a
// cent is "<$0.01" rather than a misleading $0.00.
function usd(m) {
  const neg = m < 0n;
  let a = neg ? -m : m;
  if (a > 0n && a < 5000n) return (neg ? "-" : "") + "<$0.01";
  const cents = (a + 5000n) / 10000n;
  return (neg ? "-$" : "$") + groupThousands(cents / 100n) + "." + (cents % 100n).toString().padStart(2, "0");
}

// money fills el with an amount: rounded text, exact title and data-micros.
function money(el, s) {
  const m = micros(s);
  el.textContent = usd(m);
  el.title = exactUSD(m);
  el.dataset.micros = m.toString();
  return el;
}

// --- time ----------------------------------------------------------------

function utcText(iso) {
  return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// inWords is "in 12 days", "in 5 hours", "3 days ago".
function inWords(iso, now) {
  const ms = new Date(iso).getTime() - now;
  const abs = Math.abs(ms);
  const units = [["year", 365 * 864e5], ["month", 30 * 864e5], ["day", 864e5], ["hour", 36e5], ["minute", 6e4]];
  for (const [name, size] of units) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      const w = n + " " + name + (n === 1 ? "" : "s");
      return ms >= 0 ? "in " + w : w + " ago";
    }
  }
  return ms >= 0 ? "in less than a minute" : "just now";
}

function when(iso, now) {
  const t = document.createElement("time");
  t.dateTime = iso;
  t.textContent = inWords(iso, now);
  t.title = utcText(iso);
  return t;
}

function shortDate(iso) {
  return new Date(iso).toISOString().slice(0, 10);
}

// --- DOM helpers -----------------------------------------------------------

function cell(row, content, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  row.append(td);
  return td;
}

function moneyCell(row, s) {
  const td = cell(row, "", "num");
  money(td, s);
  return td;
}

function fillTable(table, items, draw) {
  const body = table.tBodies[0];
  const rows = items.map((it) => {
    const tr = document.createElement("tr");
    draw(tr, it);
    return tr;
  });
  body.replaceChildren(...rows);
}

function setResult(el, text, good) {
  el.textContent = text;
  el.className = "result " + (good ? "good" : "bad");
}

// --- API -------------------------------------------------------------------

class SessionEnded extends Error {}

async function api(path, opts = {}) {
  const headers = { Accept: "application/json" };
  if (opts.body) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    headers["X-CSRF-Token"] = csrf;
  }
  const res = await fetch("/billing/" + path, { method: opts.body ? "POST" : "GET", headers, body: opts.body, credentials: "same-origin", cache: "no-store" });
  let data = null;
  try { data = await res.json(); } catch { /* an empty or non-JSON answer */ }
  if (res.status === 401) throw new SessionEnded(data?.error?.message || "Your billing session has ended.");
  if (!res.ok) {
    const err = new Error(data?.error?.message || "The server answered " + res.status + ".");
    err.field = data?.error?.field;
    throw err;
  }
  return data;
}

function formBody(form) {
  const body = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (k !== "csrf") body.append(k, v);
  }
  return body;
}

// nextTierText says what the next tier needs: paid so far against paid
// needed, days since the first payment against days needed.
function nextTierText(tier) {
  const n = tier.next;
  if (!n) return tier.pinned ? "Your provider set this tier." : "Your provider sets your tier; these are its limits.";
  if (n.qualifies) return "You qualify for " + n.name + ": it applies with your next payment, or within minutes.";
  const parts = [usd(micros(n.paid_so_far)) + " of " + usd(micros(n.paid)) + " paid"];
  if (n.days > 0) parts.push(n.days_so_far + " of " + n.days + " days since your first payment");
  return "Next tier: " + n.name + " (" + parts.join("; ") + ").";
}

// --- drawing ---------------------------------------------------------------

let summary = null;
let rechargeFilled = false;

function drawSummary(s) {
  // Words ("expires in 12 days") count from the ledger's clock, as the server does.
  const now = Date.parse(s.as_of) || Date.now();
  money($("#balance"), s.balance);
  for (const f of ["available", "reserved", "debt"]) money(document.querySelector(`dd[data-field="${f}"]`), s[f]);
  $("#as-of").textContent = "As of " + utcText(s.as_of);

  // Tier.
  $('#tier dd[data-field="tier"]').textContent = s.tier.name;
  const limit = (sel, v) => { const el = $(sel); if (v == null) { el.textContent = "No limit"; el.title = ""; } else money(el, v); };
  limit('#tier dd[data-field="max_topup"]', s.tier.max_topup);
  limit('#tier dd[data-field="max_balance"]', s.tier.max_balance);
  money($('#tier dd[data-field="min_purchase"]'), s.min_purchase);
  money($('#tier dd[data-field="paid_total"]'), s.tier.paid_total);
  $("#tier-next").textContent = nextTierText(s.tier);

  const addLimits = $("#add-limits");
  if (addLimits) {
    let t = "Minimum " + usd(micros(s.min_purchase));
    if (s.tier.max_topup != null) t += " · maximum " + usd(micros(s.tier.max_topup)) + " per purchase";
    if (s.tier.max_balance != null) t += " · balance up to " + usd(micros(s.tier.max_balance));
    addLimits.textContent = t + ".";
  }

  // Grants: live ones, then spent or expired ones.
  fillTable($("#grants"), s.grants, (tr, g) => {
    tr.dataset.grant = g.id;
    cell(tr, sourceName(g.source));
    moneyCell(tr, g.amount);
    moneyCell(tr, g.remaining).dataset.field = "remaining";
    const exp = when(g.expires_at, now);
    if (g.expired) exp.textContent = "expired " + inWords(g.expires_at, now);
    else exp.textContent = "expires " + exp.textContent;
    cell(tr, exp);
  });

  // Purchases.
  fillTable($("#purchases"), s.purchases, (tr, p) => {
    tr.dataset.purchase = p.id;
    const t = document.createElement("time");
    t.dateTime = p.created_at; t.textContent = shortDate(p.created_at); t.title = utcText(p.created_at);
    cell(tr, t);
    moneyCell(tr, p.status === "paid" || p.status === "refunded" ? p.paid_amount : p.amount);
    const st = cell(tr, statusName(p));
    st.className = "status-" + p.status;
    st.dataset.field = "status";
    if (p.receipt) {
      const a = document.createElement("a");
      a.href = p.receipt; a.textContent = "Receipt"; a.rel = "noreferrer"; a.target = "_blank";
      cell(tr, a);
    } else cell(tr, "—");
  });
  $("#purchases-empty").hidden = s.purchases.length > 0;

  // Auto-recharge: the form is filled once (and after a save) so polling never
  // overwrites what the customer is typing.
  const ar = s.auto_recharge;
  if (!rechargeFilled) {
    $("#ar-enabled").checked = ar.enabled;
    const dollars = (v) => (micros(v) === 0n ? "" : (Number(micros(v)) / 1e6).toFixed(2));
    $("#ar-threshold").value = dollars(ar.threshold);
    $("#ar-amount").value = dollars(ar.amount);
    $("#ar-limit").value = dollars(ar.monthly_limit);
    rechargeFilled = true;
    toggleRechargeFields();
  }
  $("#ar-min").textContent = "The smallest recharge is " + usd(micros(s.auto_recharge_min)) + ".";
  let state = ar.enabled ? "On." : "Off.";
  if (ar.enabled) state += " Recharged this month: " + usd(micros(ar.month_total)) + " of " + usd(micros(ar.monthly_limit)) + ".";
  if (ar.pending) state += " A recharge is in progress.";
  if (ar.failures > 0) state += " The last " + (ar.failures === 1 ? "recharge" : ar.failures + " recharges") + " failed" +
    (ar.backoff_until ? "; the next try is " + inWords(ar.backoff_until, now) : "") + ".";
  $("#ar-state").textContent = state;

  drawPurchaseNotice(s);
}

function sourceName(src) {
  return { purchase: "Purchase", auto_recharge: "Auto-recharge", promo: "Promotion", adjustment: "Adjustment" }[src] || src;
}

function statusName(p) {
  const names = { pending: "Pending", paid: "Paid", failed: "Failed", expired: "Expired", refunded: "Refunded" };
  let t = names[p.status] || p.status;
  if (p.status === "refunded" && micros(p.taken_back) > 0n) t += " (" + usd(micros(p.taken_back)) + " taken back)";
  return t;
}

// The return from checkout: /billing/?purchase=pur_…
const params = new URLSearchParams(location.search);
const returning = params.get("purchase");
const canceled = params.get("canceled") === "1";
let cardAfterPurchase = false;

function drawPurchaseNotice(s) {
  if (!returning) return;
  const el = $("#purchase-notice");
  const p = s.purchases.find((x) => x.id === returning);
  el.hidden = false;
  el.className = "notice";
  if (p && p.status === "paid") {
    el.textContent = "Payment received: " + usd(micros(p.paid_amount)) + " was added to your credit balance.";
    el.className = "notice good";
    if (!cardAfterPurchase) { cardAfterPurchase = true; loadCard(); }
  } else if (canceled && (!p || p.status === "pending")) {
    el.textContent = "Checkout canceled. Nothing was charged.";
  } else if (p && (p.status === "failed" || p.status === "expired")) {
    el.textContent = "The payment did not go through" + (p.reason ? ": " + p.reason : "") + ". Nothing was added.";
    el.className = "notice bad";
  } else {
    el.textContent = "Waiting for the payment to be confirmed…";
  }
}

function drawUsage(u) {
  const total = micros(u.total.cost);
  $("#usage-total").textContent = u.total.requests + " request" + (u.total.requests === 1 ? "" : "s") + " in " + monthName(u.month) + ", " + usd(total) + " in all.";
  $("#usage-total").title = exactUSD(total);
  const usageRow = (tr, r, name) => {
    cell(tr, name);
    cell(tr, r.requests.toLocaleString("en-US"), "num");
    cell(tr, r.prompt_tokens.toLocaleString("en-US"), "num");
    cell(tr, r.completion_tokens.toLocaleString("en-US"), "num");
    moneyCell(tr, r.cost);
  };
  fillTable($("#by-model"), u.by_model, (tr, r) => { tr.dataset.model = r.name; usageRow(tr, r, r.name); });
  fillTable($("#by-key"), u.by_key, (tr, r) => {
    tr.dataset.key = r.name;
    usageRow(tr, r, r.name || (r.deleted ? "A deleted key" : "No key"));
  });
  fillTable($("#recent"), u.recent, (tr, q) => {
    const t = document.createElement("time");
    t.dateTime = q.at; t.textContent = utcText(q.at).slice(5); t.title = q.at;
    cell(tr, t);
    cell(tr, q.model);
    cell(tr, q.key || "—");
    cell(tr, q.prompt_tokens.toLocaleString("en-US"), "num");
    cell(tr, q.completion_tokens.toLocaleString("en-US"), "num");
    moneyCell(tr, q.cost);
  });
  $("#recent-empty").hidden = u.recent.length > 0;
  drawChart(u);
}

function monthName(m) {
  const [y, mo] = m.split("-").map(Number);
  return new Date(Date.UTC(y, mo - 1, 1)).toLocaleString("en-US", { month: "long", year: "numeric", timeZone: "UTC" });
}

const SVG = "http://www.w3.org/2000/svg";
function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.append(el);
  return el;
}

// drawChart is a stacked bar per day, one colour per model (the biggest first).
function drawChart(u) {
  const models = u.by_model.map((r) => r.name);
  const color = (m) => palette[Math.min(models.indexOf(m), palette.length - 1)];
  const perDay = new Map(u.days.map((d) => [d, 0n]));
  for (const c of u.cells) perDay.set(c.day, (perDay.get(c.day) || 0n) + micros(c.cost));
  let max = 0n;
  for (const v of perDay.values()) if (v > max) max = v;
  const W = 720, H = 220, left = 52, bottom = 22, top = 8;
  const plotH = H - bottom - top, plotW = W - left - 4;
  const barW = plotW / Math.max(u.days.length, 1);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title" });
  svg("title", { id: "chart-title" }, root).textContent = "Cost per day this month, by model: " + usd(micros(u.total.cost)) + " in all";
  const scaleMax = max > 0n ? max : 1n;
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH - plotH * frac;
    svg("line", { x1: left, x2: W, y1: y, y2: y, class: "grid-line" }, root);
    const label = svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, root);
    label.textContent = usd(BigInt(Math.round(Number(scaleMax) * frac)));
  }
  u.days.forEach((day, i) => {
    let y = top + plotH;
    const x = left + i * barW + barW * 0.15;
    for (const m of models) {
      const c = u.cells.find((c) => c.day === day && c.model === m);
      if (!c) continue;
      const v = micros(c.cost);
      const h = Math.max((Number(v) / Number(scaleMax)) * plotH, v > 0n ? 1 : 0);
      y -= h;
      const r = svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: (barW * 0.7).toFixed(1), height: h.toFixed(1), fill: color(m),
        "data-model": m, "data-day": day, "data-micros": v.toString() }, root);
      svg("title", {}, r).textContent = `${day} · ${m}: ${usd(v)} (${exactUSD(v)}), ${c.requests} request${c.requests === 1 ? "" : "s"}`;
    }
    if (i % 5 === 0 || i === u.days.length - 1) {
      const t = svg("text", { x: (left + i * barW + barW / 2).toFixed(1), y: H - 6, "text-anchor": "middle", class: "axis" }, root);
      t.textContent = day.slice(8);
    }
  });
  $("#chart").replaceChildren(root);
  const legend = models.map((m, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch sw" + Math.min(i, palette.length - 1);
    li.append(sw, m);
    return li;
  });
  $("#legend").replaceChildren(...legend);
}

async function loadCard() {
  try {
    const { card } = await api("api/payment-method");
    const el = $("#card");
    if (card) {
      el.textContent = card.display + ", expires " + card.expiry;
      el.dataset.last4 = card.last4;
    } else {
      el.textContent = "No payment method saved. Tick \u201cSave this payment method\u201d when you add credit to keep one for auto-recharge.";
      delete el.dataset.last4;
    }
  } catch (e) {
    if (e instanceof SessionEnded) ended(e.message);
    else $("#card").textContent = "The payment method cannot be shown just now.";
  }
}

// --- live updates ----------------------------------------------------------

let timer = null;
let stopped = false;
let usageEvent = null;
let usageAt = 0;
let usageBusy = false;

function ended(message) {
  stopped = true;
  clearTimeout(timer);
  $("#status").textContent = message;
  for (const b of document.querySelectorAll("main button")) b.disabled = true;
}

async function tick() {
  if (stopped) return;
  try {
    summary = await api("api/summary");
    drawSummary(summary);
    $("#status").textContent = "";
    maybeUsage();
  } catch (e) {
    if (e instanceof SessionEnded) return ended(e.message);
    $("#status").textContent = "Could not reach the billing service; retrying.";
  }
  schedule();
}

function schedule() {
  clearTimeout(timer);
  if (!stopped && document.visibilityState === "visible") timer = setTimeout(tick, POLL_MS);
}

async function maybeUsage(force) {
  if (usageBusy || !summary) return;
  if (!force && summary.last_event_id === usageEvent) return;
  if (!force && Date.now() - usageAt < USAGE_MIN_MS && usageEvent !== null) return;
  usageBusy = true;
  try {
    const u = await api("api/usage");
    usageEvent = u.last_event_id;
    usageAt = Date.now();
    drawUsage(u);
  } catch (e) {
    if (e instanceof SessionEnded) ended(e.message);
  } finally {
    usageBusy = false;
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") tick();
  else clearTimeout(timer);
});

// --- forms -----------------------------------------------------------------

function markInvalid(form, field) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (!field) return;
  const el = form.querySelector(`[name="${field}"]`);
  if (el && el.type !== "radio") { el.setAttribute("aria-invalid", "true"); el.focus(); }
}

const addForm = $("#add-form");
if (addForm) {
  const custom = $("#custom-amount");
  const label = () => {
    const picked = addForm.querySelector('input[name="amount"]:checked');
    let v = picked && picked.value ? picked.value : custom.value.trim().replace(/^\$/, "");
    const ok = /^\d+(\.\d{1,2})?$/.test(v);
    $("#add-button").textContent = ok ? "Add " + usd(micros(v)) : "Add to credit balance";
  };
  addForm.addEventListener("change", label);
  custom.addEventListener("input", () => { $("#custom-choice").checked = true; label(); });
  custom.addEventListener("focus", () => { $("#custom-choice").checked = true; label(); });
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = $("#add-result");
    const button = $("#add-button");
    button.disabled = true;
    setResult(result, "Starting the checkout…", true);
    try {
      const p = await api("purchases", { body: formBody(addForm) });
      markInvalid(addForm, null);
      location.assign(p.url);
    } catch (e) {
      if (e instanceof SessionEnded) return ended(e.message);
      setResult(result, e.message, false);
      markInvalid(addForm, e.field);
      button.disabled = false;
    }
  });
}

const rechargeForm = $("#recharge-form");
function toggleRechargeFields() {
  const on = $("#ar-enabled").checked;
  for (const el of rechargeForm.querySelectorAll(".fields input")) el.required = on;
}
$("#ar-enabled").addEventListener("change", toggleRechargeFields);
rechargeForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const result = $("#ar-result");
  try {
    const saved = await api("auto-recharge", { body: formBody(rechargeForm) });
    markInvalid(rechargeForm, null);
    setResult(result, saved.enabled ? "Saved: auto-recharge is on." : "Saved: auto-recharge is off.", true);
    rechargeFilled = false;
    tick();
  } catch (e) {
    if (e instanceof SessionEnded) return ended(e.message);
    setResult(result, "Not saved: " + e.message, false);
    markInvalid(rechargeForm, e.field);
  }
});

tick();
loadCard();
