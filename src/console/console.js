// Tidewatch console: the duty officers' view of the alert API.
//
// One page, no build step. It logs in with a session cookie (POST /api/session), lists alerts
// and silences, acts on them through the same API as any client, and listens to
// /api/events so that a new or changed alert shows without a reload. Every value from the
// server goes into the page as text, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- language -----------------------------------------------------------------------------
// English in the page and the code; Chinese when the browser prefers it (or the header's
// button chose it). `t` looks a text up by its English words, with {0}, {1}… for values.

const ZH = {
  "Alerts": "告警", "Silences": "静默", "Rules": "规则", "Log out": "退出", "Log in": "登录",
  "User": "用户", "Password": "密码", "Show": "显示", "at least": "至少", "any colour": "任意颜色",
  "region": "区划", "open": "未解除", "firing": "告警中", "acknowledged": "已确认",
  "resolved": "已解除", "all": "全部", "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色",
  "Level": "等级", "Alert": "告警", "Station": "站点", "Region": "区划", "Value": "数值",
  "Fired": "发生时间", "State": "状态", "No alerts.": "暂无告警。",
  "Stations, coloured by their most severe alert shown. Base map: Natural Earth.":
    "站点按其最严重告警着色。底图：Natural Earth。",
  "Rule": "规则", "From": "开始", "Until": "结束", "By": "操作人", "Why": "原因",
  "No silences.": "暂无静默。", "New silence": "新建静默", "For": "时长", "Silence": "静默",
  "1 hour": "1 小时", "4 hours": "4 小时", "12 hours": "12 小时", "1 day": "1 天", "1 week": "1 周",
  "maintenance": "检修", "Reload rule files now": "立即重新加载规则文件",
  "Kind": "类型", "Title": "标题", "Colours": "颜色", "Where": "位置",
  "Logged out.": "已退出。", "Your session has ended; log in again.": "会话已结束，请重新登录。",
  "acknowledged by {0}": "{0} 已确认", "Acknowledge": "确认", "Resolve": "解除", "End": "结束",
  "Threshold": "阈值", "Condition since": "条件开始于", "Resolved": "解除时间",
  "Acknowledged": "确认", "Team": "值班组", "Escalation": "升级", "level {0}": "第 {0} 级",
  "note": "备注", "History": "历史", "Notifications": "通知",
  "fire": "发生", "escalate": "升级", "de_escalate": "降级", "resolve": "解除",
  "acknowledge": "确认", "manual_resolve": "人工解除", "reminder": "提醒", "suppressed": "已抑制",
  "{0} readings": "{0} 条读数", "sources {0}/{1} up": "数据源 {0}/{1} 在线", "{0} rules": "{0} 条规则",
  "{0} of {1} shown": "显示 {0} / {1}", "Tidewatch cannot be reached ({0})": "无法连接 Tidewatch（{0}）",
  "Rule files rejected ({0}, {1}); the rules in force stay:\n{2}": "规则文件被拒绝（{0}，{1}），当前规则保持不变：\n{2}",
  "Last reload ({0}, {1}): {2}": "上次重新加载（{0}，{1}）：{2}",
  "applied": "已生效", "unchanged": "未变化", "rejected": "已拒绝",
  "added {0}": "新增 {0}", "changed {0}": "修改 {0}", "removed {0}": "删除 {0}",
  "{0} states kept, {1} alerts held by changed rules, {2} resolved": "保留 {0} 个状态，{1} 个告警由修改后的规则接管，{2} 个已解除",
  "{0} rules from {1}, loaded {2}": "{0} 条规则，来自 {1}，加载于 {2}", "{0} rules built in": "{0} 条内置规则",
  "by {0}": "操作人 {0}", "at": "于",
};
const LANGUAGE = (localStorage.getItem("tidewatch.language") || navigator.language || "en").toLowerCase().startsWith("zh")
  ? "zh" : "en";

function t(text, ...values) {
  const said = (LANGUAGE === "zh" && ZH[text]) || text;
  return said.replace(/\{(\d)\}/g, (_, i) => String(values[Number(i)]));
}

/// The page's own words, in the chosen language.
function translatePage() {
  document.documentElement.lang = LANGUAGE === "zh" ? "zh-CN" : "en";
  $("language").textContent = LANGUAGE === "zh" ? "English" : "中文";
  if (LANGUAGE === "en") return;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue.trim();
    if (text && ZH[text]) node.nodeValue = node.nodeValue.replace(text, ZH[text]);
  }
  for (const input of document.querySelectorAll("input[placeholder]")) input.placeholder = t(input.placeholder);
}

$("language").addEventListener("click", () => {
  localStorage.setItem("tidewatch.language", LANGUAGE === "zh" ? "en" : "zh");
  location.reload();
});
const SEVERITIES = ["blue", "yellow", "orange", "red"];
let me = null; // {name, role, expires_at}
let events = null; // EventSource
let changed = new Set(); // alert ids to flash on the next render
let reloadTimer = null;

// ---- the API ------------------------------------------------------------------------------

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, reason: t("Tidewatch cannot be reached ({0})", e.message) };
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data, headers: response.headers };
  let reason = data && data.reason ? data.reason : response.statusText;
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) reason += " (try again in " + retry + " s)";
  return { ok: false, status: response.status, reason, data };
}

const mayAct = () => me && (me.role === "duty" || me.role === "admin");
const maySilence = () => me && (me.role === "analyst" || me.role === "admin");

// ---- logging in ---------------------------------------------------------------------------

async function start() {
  const session = await api("GET", "/api/session");
  if (session.ok) {
    loggedIn(session.data);
  } else {
    showLogin(session.status === 401 ? "" : session.reason);
  }
}

function showLogin(message) {
  me = null;
  if (events) events.close();
  events = null;
  $("live").classList.remove("on");
  for (const id of ["alerts", "silences", "rules", "tabs", "who", "rules-banner"]) $(id).hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-name").focus();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const name = $("login-name").value;
  const password = $("login-password").value;
  const answer = await api("POST", "/api/session", { name, password });
  $("login-password").value = "";
  if (answer.ok) {
    loggedIn(answer.data);
  } else {
    $("login-error").textContent = answer.reason;
  }
});

$("logout").addEventListener("click", async () => {
  await api("DELETE", "/api/session");
  showLogin(t("Logged out."));
});

function loggedIn(session) {
  me = session;
  $("login").hidden = true;
  $("tabs").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = me.name;
  $("who-role").textContent = me.role;
  $("silence-form").hidden = !maySilence();
  $("reload").hidden = !maySilence();
  listen();
  drawMap().then(route);
  engine();
}

// ---- tabs ---------------------------------------------------------------------------------

function route() {
  if (!me) return;
  const hash = location.hash.replace(/^#/, "");
  const [tab, arg] = hash.split("=");
  const current = ["silences", "rules"].includes(tab) ? tab : "alerts";
  for (const section of ["alerts", "silences", "rules"]) $(section).hidden = current !== section;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("current", a.dataset.tab === current);
  if (current === "alerts") {
    loadAlerts();
    if (tab === "alert" && arg) showDetail(arg);
  } else if (current === "silences") {
    loadSilences();
  } else {
    loadRules();
  }
}
window.addEventListener("hashchange", route);

// ---- alerts -------------------------------------------------------------------------------

function localTime(rfc3339) {
  if (!rfc3339) return "";
  const t = new Date(rfc3339);
  if (isNaN(t)) return rfc3339;
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

function levelChip(severity) {
  const chip = document.createElement("span");
  chip.className = "level " + severity;
  chip.textContent = t(severity);
  return chip;
}

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.append(content);
  else td.textContent = content == null ? "" : String(content);
  return td;
}

/// A button that acknowledges (`ack`) or resolves (`resolve`) an alert, with the note in
/// `note` (an input) if given; `after` runs once the answer is in.
function actionButton(path, alert, { note = null, after = () => {} } = {}) {
  const label = path === "ack" ? "Acknowledge" : "Resolve";
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = t(label);
  b.className = path;
  b.addEventListener("click", async (e) => {
    e.stopPropagation();
    b.disabled = true;
    const text = note ? note.value.trim() : "";
    const answer = await api("POST", `/api/alerts/${alert.id}/${path}`, text ? { note: text } : {});
    $("alerts-error").textContent = answer.ok ? "" : `${t(label)} alert ${alert.id}: ${answer.reason}`;
    if (!answer.ok) b.disabled = false;
    changed.add(alert.id);
    loadAlerts();
    after();
  });
  return b;
}

function alertQuery() {
  const q = new URLSearchParams({ state: $("filter-state").value, limit: "500" });
  if ($("filter-severity").value) q.set("severity", $("filter-severity").value);
  const region = $("filter-region").value.trim();
  if (region) q.set("region", region);
  return q;
}

let loads = 0; // the newest list asked for wins, whatever order the answers come in

async function loadAlerts() {
  const asked = ++loads;
  const answer = await api("GET", "/api/alerts?" + alertQuery());
  if (asked !== loads) return;
  if (answer.status === 401) return showLogin(t("Your session has ended; log in again."));
  if (!answer.ok) {
    $("alerts-error").textContent = answer.reason;
    return;
  }
  const alerts = answer.data;
  const rows = $("alert-rows");
  // Rows whose alert did not change stay as they are (a click on them is not lost).
  const shown = new Map([...rows.rows].map((r) => [r.dataset.id, r]));
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  const next = [];
  for (const alert of alerts) {
    bySeverity[alert.severity] = (bySeverity[alert.severity] || 0) + 1;
    const signature = JSON.stringify([alert.state, alert.severity, alert.value, alert.threshold, alert.title, alert.acknowledged, me.role]);
    let row = shown.get(String(alert.id));
    if (!row || row.dataset.signature !== signature) {
      row = alertRow(alert);
      row.dataset.signature = signature;
      if (changed.has(alert.id)) row.classList.add("fresh");
    }
    next.push(row);
  }
  rows.replaceChildren(...next);
  changed = new Set();
  paintStations(alerts);
  // The tab's title counts what nobody has taken on yet, so a duty officer on another tab sees it.
  const firing = alerts.filter((a) => a.state === "firing").length;
  document.title = firing ? `(${firing}) Tidewatch` : "Tidewatch";
  $("no-alerts").hidden = alerts.length > 0;
  const total = answer.headers.get("X-Total-Count");
  const counts = $("counts");
  counts.replaceChildren();
  for (const s of SEVERITIES.slice().reverse()) {
    if (bySeverity[s]) {
      const span = document.createElement("span");
      span.append(levelChip(s), " " + bySeverity[s]);
      counts.append(span);
    }
  }
  if (total && Number(total) > alerts.length) counts.append(t("{0} of {1} shown", alerts.length, total));
}

function alertRow(alert) {
  const row = document.createElement("tr");
  row.dataset.id = alert.id;
  row.dataset.severity = alert.severity;
  row.dataset.state = alert.state;
  cell(row, levelChip(alert.severity));
  cell(row, alert.title);
  cell(row, `${alert.station_name} (${alert.station})`);
  cell(row, alert.region);
  cell(row, `${fmt(alert.value)} ${alert.direction === "below" ? "<" : ">"} ${fmt(alert.threshold)} ${alert.unit}`);
  cell(row, localTime(alert.fired_at));
  const acknowledged = alert.state === "acknowledged" && alert.acknowledged;
  const state = cell(row, acknowledged ? t("acknowledged by {0}", alert.acknowledged.by) : t(alert.state));
  state.className = "state state-" + alert.state;
  const actions = cell(row, "");
  if (mayAct() && alert.state === "firing") actions.append(actionButton("ack", alert));
  if (mayAct() && alert.state !== "resolved") actions.append(actionButton("resolve", alert));
  row.addEventListener("click", () => { location.hash = "alert=" + alert.id; });
  return row;
}

function fmt(x) {
  return typeof x === "number" ? (Math.round(x * 1000) / 1000).toString() : "";
}

for (const id of ["filter-state", "filter-severity"]) $(id).addEventListener("change", loadAlerts);
$("filter-region").addEventListener("change", loadAlerts);

async function showDetail(id) {
  const answer = await api("GET", `/api/alerts/${encodeURIComponent(id)}`);
  const pane = $("detail");
  pane.replaceChildren();
  pane.hidden = false;
  const close = document.createElement("button");
  close.className = "close";
  close.textContent = "×";
  close.addEventListener("click", () => { pane.hidden = true; location.hash = "alerts"; });
  pane.append(close);
  if (!answer.ok) {
    pane.append(answer.reason);
    return;
  }
  const a = answer.data;
  const h = document.createElement("h2");
  h.append(levelChip(a.severity), " " + a.title);
  pane.append(h);
  const dl = document.createElement("dl");
  const item = (k, v) => {
    if (v == null || v === "") return;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  };
  item(t("Alert"), a.id);
  item(t("Rule"), a.rule);
  item(t("State"), t(a.state));
  item(t("Station"), `${a.station_name} (${a.station}), ${a.region}, ${a.domain}`);
  item(t("Value"), `${fmt(a.value)} ${a.unit}`);
  item(t("Threshold"), `${a.direction === "below" ? "<" : ">"} ${fmt(a.threshold)} ${a.unit}`);
  item(t("Condition since"), localTime(a.since));
  item(t("Fired"), localTime(a.fired_at));
  item(t("Resolved"), localTime(a.resolved_at));
  item(t("Acknowledged"), a.acknowledged ? `${a.acknowledged.by} ${t("at")} ${localTime(a.acknowledged.at)}${a.acknowledged.note ? ": " + a.acknowledged.note : ""}` : "");
  item(t("Team"), a.team);
  item(t("Escalation"), a.escalation_level ? t("level {0}", a.escalation_level) : "");
  pane.append(dl);
  if (mayAct() && a.state !== "resolved") {
    const note = document.createElement("input");
    note.placeholder = t("note");
    note.id = "detail-note";
    pane.append(note);
    for (const path of a.state === "firing" ? ["ack", "resolve"] : ["resolve"]) {
      pane.append(" ", actionButton(path, a, { note, after: () => showDetail(a.id) }));
    }
  }
  const list = (title, items, text) => {
    if (!items || !items.length) return;
    const h3 = document.createElement("h3");
    h3.textContent = title;
    const ol = document.createElement("ol");
    for (const x of items) {
      const li = document.createElement("li");
      li.textContent = text(x);
      ol.append(li);
    }
    pane.append(h3, ol);
  };
  list(t("History"), a.history, (e) =>
    `${localTime(e.event_time || e.at)} ${t(e.happening)} (${t(e.severity)})` +
    (e.value != null ? ` ${fmt(e.value)} ${a.unit}` : "") + (e.actor ? ` ${t("by {0}", e.actor)}` : "") + (e.note ? `: ${e.note}` : ""));
  list(t("Notifications"), a.notifications, (n) =>
    `${t(n.happening)} → ${n.channel} (${(n.recipients || []).join(", ")}): ${n.status}` +
    (n.attempts > 1 ? `, ${n.attempts} attempts` : "") + (n.last_error ? `, last error: ${n.last_error}` : ""));
}

// ---- the map -------------------------------------------------------------------------------

// An equirectangular view of the base map's box (117.95–123.2 E, 27.0–31.2 N), shrunk east–west
// by the cosine of its middle latitude; 1,000 units per degree of latitude.
const WEST = 117.95, NORTH = 31.2, SHRINK = Math.cos((29.1 * Math.PI) / 180);
const project = ([lon, lat]) => [Math.round((lon - WEST) * SHRINK * 1000), Math.round((NORTH - lat) * 1000)];
const SVG = "http://www.w3.org/2000/svg";
let stations = null; // [{id, name, lon, lat, …}], once loaded
let mapDrawn = false;

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
  return element;
}

function pathOf(geometry) {
  const line = (points, close) =>
    points.map((p, i) => (i ? "L" : "M") + project(p).join(" ")).join("") + (close ? "Z" : "");
  switch (geometry.type) {
    case "LineString": return line(geometry.coordinates, false);
    case "MultiLineString": return geometry.coordinates.map((l) => line(l, false)).join("");
    case "Polygon": return geometry.coordinates.map((r) => line(r, true)).join("");
    case "MultiPolygon": return geometry.coordinates.flat().map((r) => line(r, true)).join("");
    default: return "";
  }
}

async function drawMap() {
  if (mapDrawn) return;
  mapDrawn = true;
  const base = $("map-base");
  for (const layer of ["province", "lakes", "rivers", "coastline"]) {
    const answer = await api("GET", `/console/geo/${layer}.geojson`);
    if (!answer.ok || !answer.data) continue;
    const d = answer.data.features.map((f) => pathOf(f.geometry)).join("");
    base.append(svg("path", { d, class: layer }));
  }
  const answer = await api("GET", "/api/stations");
  if (answer.ok) stations = answer.data;
}

/// Every station a dot; a station with alerts in the list takes the colour of its most severe.
function paintStations(alerts) {
  if (!stations) return;
  const worst = new Map();
  for (const a of alerts) {
    const was = worst.get(a.station);
    if (!was || SEVERITIES.indexOf(a.severity) > SEVERITIES.indexOf(was.severity)) worst.set(a.station, a);
  }
  const layer = $("map-stations");
  layer.replaceChildren();
  // Stations with alerts are drawn last, on top.
  const ordered = stations.slice().sort((a, b) => (worst.has(a.id) ? 1 : 0) - (worst.has(b.id) ? 1 : 0));
  for (const s of ordered) {
    const [cx, cy] = project([s.lon, s.lat]);
    const alert = worst.get(s.id);
    const dot = svg("circle", { cx, cy, r: alert ? 60 : 32, "data-station": s.id });
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${s.name} (${s.id})` + (alert ? ` · ${alert.severity}: ${alert.title}` : "");
    dot.append(title);
    if (alert) {
      dot.dataset.severity = alert.severity;
      dot.classList.add(alert.severity);
      if (alert.state === "firing") dot.classList.add("firing");
      dot.addEventListener("click", () => { location.hash = "alert=" + alert.id; });
    }
    layer.append(dot);
  }
}

// ---- live updates -------------------------------------------------------------------------

function listen() {
  if (events || typeof EventSource === "undefined") return;
  events = new EventSource("/api/events");
  events.addEventListener("open", () => $("live").classList.add("on"));
  events.addEventListener("error", () => $("live").classList.remove("on"));
  events.addEventListener("alert", (e) => {
    try {
      changed.add(JSON.parse(e.data).alert_id);
    } catch (_) { /* a notice we cannot read still means: look again */ }
    soon();
  });
  // Some notices were missed (the page was too slow to read them): read the list afresh.
  events.addEventListener("resync", soon);
}

function soon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    if (!$("alerts").hidden) loadAlerts();
  }, 100);
}

/// The header's figures and the rules banner, every 5 s while logged in.
async function engine() {
  if (!me) return;
  await status();
  setTimeout(engine, 5000);
}

async function status() {
  const [health, rules] = await Promise.all([api("GET", "/healthz"), api("GET", "/api/rules")]);
  const said = [];
  if (health.ok && health.data) {
    const h = health.data;
    const sources = Object.values(h.sources || {});
    const up = sources.filter((s) => s.up).length;
    said.push(t("{0} readings", h.readings ?? 0), t("sources {0}/{1} up", up, sources.length));
  }
  // A rule file saved with a mistake: the rules in force stay, and the page says why.
  const banner = $("rules-banner");
  if (rules.ok && rules.data) {
    said.push(t("{0} rules", rules.data.rules.length));
    const last = rules.data.last_reload;
    const rejected = last && last.outcome === "rejected";
    banner.hidden = !rejected;
    banner.textContent = rejected
      ? t("Rule files rejected ({0}, {1}); the rules in force stay:\n{2}", last.trigger, localTime(last.at), last.errors.join("\n"))
      : "";
  }
  $("engine").textContent = said.join(" · ");
}

// A backstop for a lost event stream.
setInterval(() => { if (me && !$("alerts").hidden) loadAlerts(); }, 30000);

// ---- silences -----------------------------------------------------------------------------

async function loadSilences() {
  const answer = await api("GET", "/api/silences");
  if (answer.status === 401) return showLogin(t("Your session has ended; log in again."));
  const rows = $("silence-rows");
  rows.replaceChildren();
  if (!answer.ok) {
    $("silence-error").textContent = answer.reason;
    return;
  }
  for (const s of answer.data) {
    const row = rows.insertRow();
    row.dataset.id = s.id;
    for (const v of [s.station, s.rule, s.region, localTime(s.starts_at), localTime(s.ends_at), s.created_by, s.comment]) cell(row, v || "");
    const actions = cell(row, "");
    if (maySilence() && s.source === "api") {
      const b = document.createElement("button");
      b.textContent = t("End");
      b.addEventListener("click", async () => {
        const done = await api("DELETE", `/api/silences/${s.id}`);
        $("silence-error").textContent = done.ok ? "" : done.reason;
        loadSilences();
      });
      actions.append(b);
    }
  }
  $("no-silences").hidden = answer.data.length > 0;
}

$("silence-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const ends = new Date(Date.now() + Number(f.hours.value) * 3600 * 1000).toISOString();
  const body = { ends_at: ends, created_by: me.name, comment: f.comment.value };
  for (const k of ["station", "rule", "region"]) if (f[k].value.trim()) body[k] = f[k].value.trim();
  const answer = await api("POST", "/api/silences", body);
  $("silence-error").textContent = answer.ok ? "" : answer.reason;
  if (answer.ok) e.target.reset();
  loadSilences();
});

// ---- rules -------------------------------------------------------------------------------

async function loadRules() {
  const answer = await api("GET", "/api/rules");
  if (!answer.ok) {
    $("reload-error").textContent = answer.reason;
    return;
  }
  const r = answer.data;
  // Built-in rules (the demo) have no files to read again.
  $("reload").hidden = !maySilence() || !r.files.length;
  $("rules-loaded").textContent = r.files.length
    ? t("{0} rules from {1}, loaded {2}", r.rules.length, r.files.join(", "), localTime(r.loaded_at))
    : t("{0} rules built in", r.rules.length);
  const rows = $("rule-rows");
  rows.replaceChildren();
  for (const rule of r.rules) {
    const row = rows.insertRow();
    row.dataset.id = rule.id;
    cell(row, rule.id);
    cell(row, rule.kind);
    cell(row, rule.title || "");
    const colours = document.createElement("span");
    for (const s of rule.severities) colours.append(levelChip(s), " ");
    cell(row, colours);
    cell(row, rule.at);
  }
  if (r.last_reload && !$("reload-report").textContent) $("reload-report").textContent = describeReload(r.last_reload);
}

function describeReload(report) {
  const parts = [t("Last reload ({0}, {1}): {2}", report.trigger, localTime(report.at), t(report.outcome))];
  for (const what of ["added", "changed", "removed"]) {
    if (report[what] && report[what].length) parts.push(t(`${what} {0}`, report[what].join(", ")));
  }
  if (report.engine) {
    const e = report.engine;
    parts.push(t("{0} states kept, {1} alerts held by changed rules, {2} resolved", e.kept, e.restarted, e.resolved));
  }
  return parts.join(" · ");
}

$("reload").addEventListener("click", async () => {
  $("reload").disabled = true;
  $("reload-error").textContent = "";
  const answer = await api("POST", "/api/rules/reload");
  $("reload").disabled = false;
  if (answer.ok) {
    $("reload-report").textContent = describeReload(answer.data);
  } else {
    $("reload-report").textContent = "";
    $("reload-error").textContent = answer.reason;
  }
  loadRules();
  status();
});

translatePage();
start();
