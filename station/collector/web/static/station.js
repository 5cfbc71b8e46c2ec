// Camera-trap collector: one station's page. Reads /api/stations/{id} and its /health,
// draws the timeline as plain boxes and the readings with the vendored Chart.js, and asks
// the station for a picture through the collector. Plain JavaScript, no build step; every
// text from the database goes in through textContent, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "camtrap-collector-token";  // the same as the main page's: one token per tab
  const DAY_MS = 86400000;
  const params = new URLSearchParams(location.search);
  const refreshSeconds = Math.min(3600, Math.max(1, Number(params.get("refresh")) || 30));
  const stationId = decodeURIComponent(location.pathname.replace(/^\/stations\//, "").replace(/\/$/, ""));
  const STATE_WORDS = { online: "online, watching", sleeping: "sleeping (schedule)", camera_failed: "camera failing",
                        tampered: "tampered", silent: "silent", offline: "offline" };

  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem(TOKEN_KEY) || "", timeZone: "UTC", chart: null, refreshes: 0,
                  busy: false, snapshot: null, polling: null, blobUrl: null };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function headers() {
    return state.token ? { "Authorization": "Bearer " + state.token } : {};
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: headers(), cache: "no-store" }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || response.status + " " + response.statusText);
    }
    return body;
  }

  function formatTime(iso, withDay) {
    if (!iso) return "—";
    const options = { timeZone: state.timeZone, hour: "2-digit", minute: "2-digit" };
    if (withDay !== false) { options.day = "numeric"; options.month = "short"; }
    return new Intl.DateTimeFormat("en-GB", options).format(new Date(iso));
  }

  function span(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " days";
  }

  function showProblem(message) {
    $("problem").hidden = !message;
    $("problem").textContent = message || "";
  }

  // -- now -------------------------------------------------------------------------

  function fact(name, value, extra) {
    return [el("dt", { text: name }), el("dd", extra || {}, value)];
  }

  function renderStation(data) {
    const s = data.item;
    const status = s.online === null ? "unknown" : (s.online ? "online" : "offline");
    const reason = s.status ? " (" + s.status.reason.replace("_", " ") + ")" : "";
    const power = data.power || {};
    const items = [
      ...fact("Status", el("span", { class: "badge " + (s.online === null ? "neutral" : status), text: status }),
              { "data-fact": "status" }),
      ...fact("Last heard", (s.silent_s === null ? "never" : span(s.silent_s) + " ago") + reason,
              { "data-fact": "heard" }),
      ...fact("Heartbeat", data.interval_s ? "every " + span(data.interval_s) + ", silent after "
              + span(data.silent_after_s) : "—", { "data-fact": "interval" }),
      ...fact("Camera", s.camera_state || "—", { "data-fact": "camera" }),
      ...fact("Disk free", s.disk_free_mb === null ? "—" : Math.round(s.disk_free_mb) + " MB"
              + (s.disk_low ? " (low)" : ""), { "data-fact": "disk" }),
      ...fact("Outbox", s.outbox_depth === null ? "—" : String(s.outbox_depth), { "data-fact": "outbox" }),
      ...fact("CPU temperature", s.cpu_temperature_c === null ? "—" : s.cpu_temperature_c.toFixed(1) + " °C",
              { "data-fact": "temperature" }),
      ...fact("Battery", power.battery_v === null || power.battery_v === undefined ? "—"
              : power.battery_v.toFixed(2) + " V" + (power.battery_low ? " (low)" : ""), { "data-fact": "battery" }),
    ];
    $("summary").replaceChildren(...items);
    $("station-name").textContent = s.station_id;
    document.title = s.station_id + " · Camera-trap collector";
    const list = $("problems");
    list.replaceChildren(...data.problems.map((p) => el("li", { "data-rule": p.rule },
      el("strong", { text: p.rule.replace(/^problem:/, "").replace(/_/g, " ") }), " — " + p.detail)));
    $("problems-none").hidden = data.problems.length > 0;
    const odd = data.implausible || { heartbeats: 0 };
    $("implausible").hidden = !odd.heartbeats;
    $("implausible").textContent = odd.heartbeats ? odd.heartbeats + " heartbeat(s) carried impossible values, "
      + "left out of the charts (latest: " + odd.latest_fields.join(", ") + ")" : "";
    $("snapshot-button").disabled = !data.snapshots;
    const badge = $("view-badge");
    badge.className = "badge " + (data.location_generalised ? "public" : "exact");
    badge.textContent = data.location_generalised ? "public view" : "restricted view";
  }

  // -- timeline and effort ---------------------------------------------------------

  function renderTimeline(data) {
    const since = Date.parse(data.since), until = Date.parse(data.until), width = until - since;
    const box = $("timeline");
    box.replaceChildren(...data.timeline.map((seg) => {
      const a = Date.parse(seg.start), b = Date.parse(seg.end);
      const node = el("div", { class: "seg seg-" + seg.state, "data-state": seg.state, "data-start": seg.start,
                               "data-end": seg.end,
                               title: STATE_WORDS[seg.state] + ": " + formatTime(seg.start) + " – " + formatTime(seg.end)
                                 + " (" + span(seg.seconds) + ")" + (seg.detail ? ", " + seg.detail : "") });
      node.style.left = (100 * (a - since) / width).toFixed(4) + "%";
      node.style.width = (100 * (b - a) / width).toFixed(4) + "%";
      return node;
    }));
    $("timeline-empty").hidden = data.timeline.length > 0;
    $("axis-start").textContent = formatTime(data.since);
    $("axis-end").textContent = formatTime(data.until);
    const e = data.effort || { seconds: {}, downtime: [] };
    const down = (e.downtime || []).reduce((sum, d) => sum + d.seconds, 0);
    $("camera-days").textContent = e.camera_days === undefined ? "—" : e.camera_days.toFixed(2);
    $("deployed-days").textContent = e.deployed_days === undefined ? "—" : e.deployed_days.toFixed(2);
    $("sleeping-days").textContent = ((e.seconds.sleeping || 0) / 86400).toFixed(2) + " days";
    $("down-days").textContent = (down / 86400).toFixed(2) + " days";
    $("downtime").replaceChildren(...(e.downtime || []).map((d) => el("li", { "data-state": d.state },
      el("strong", { text: STATE_WORDS[d.state] }), " " + formatTime(d.start) + " – " + formatTime(d.end)
        + " (" + span(d.seconds) + ")" + (d.detail && d.detail !== d.state ? ": " + d.detail : ""))));
    $("downtime-none").hidden = (e.downtime || []).length > 0;
  }

  function renderChart(data) {
    const points = (series) => series.map(([t, v]) => ({ x: Date.parse(t), y: v }));
    const datasets = [
      { label: "CPU temperature (°C)", data: points(data.series.temperature_c), yAxisID: "y",
        borderColor: "#c9822b", backgroundColor: "#c9822b", pointRadius: 0, borderWidth: 2 },
      { label: "Battery (V)", data: points(data.series.battery_v), yAxisID: "y1",
        borderColor: "#2f6f4f", backgroundColor: "#2f6f4f", pointRadius: 0, borderWidth: 2 },
    ];
    const empty = datasets.every((d) => d.data.length === 0);
    $("chart-empty").hidden = !empty;
    const since = Date.parse(data.since), until = Date.parse(data.until);
    if (state.chart) {
      state.chart.data.datasets = datasets;
      state.chart.options.scales.x.min = since;
      state.chart.options.scales.x.max = until;
      state.chart.update();
      return;
    }
    state.chart = new Chart($("health-chart"), {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
        scales: {
          x: { type: "linear", min: since, max: until,
               ticks: { maxTicksLimit: 8, callback: (v) => formatTime(new Date(v).toISOString()) } },
          y: { position: "left", title: { display: true, text: "°C" } },
          y1: { position: "right", title: { display: true, text: "V" }, grid: { drawOnChartArea: false } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
                   tooltip: { callbacks: { title: (items) => formatTime(new Date(items[0].parsed.x).toISOString()) } } },
      },
    });
  }

  // -- a picture now -----------------------------------------------------------------

  async function showFrame(url) {
    const img = $("snapshot-image");
    if (state.blobUrl) { URL.revokeObjectURL(state.blobUrl); state.blobUrl = null; }
    if (state.token) {  // an <img> cannot send the Authorization header
      const response = await fetch(url, { headers: headers() });
      if (!response.ok) return;
      state.blobUrl = URL.createObjectURL(await response.blob());
      img.src = state.blobUrl;
    } else {
      img.src = url;
    }
    img.alt = "the latest frame of " + stationId;
    img.hidden = false;
  }

  function describeSnapshot(s) {
    if (s.state === "pending") return "Asked at " + formatTime(s.requested_at, false) + "; waiting for the station…";
    if (s.state === "expired") return "The station did not answer (it may be offline or asleep without a link).";
    if (s.state === "failed") return "The station could not take it: " + (s.message || "no reason given");
    if (s.thumbnail_url) return "Taken at " + formatTime(s.answered_at, false) + " (event " + s.event_id + ").";
    if (s.detection) return "Taken (event " + s.event_id + "), but the station sends no thumbnails "
      + "(mqtt.thumbnails = false): the picture is on its card.";
    return "Taken (event " + s.event_id + "); the picture is on its way…";
  }

  async function pollSnapshot() {
    if (!state.snapshot) return;
    try {
      const s = await api("/api/stations/" + encodeURIComponent(stationId) + "/snapshots/"
                          + encodeURIComponent(state.snapshot));
      $("snapshot-state").textContent = describeSnapshot(s);
      $("snapshot-state").dataset.state = s.state + (s.thumbnail_url ? "-picture" : "");
      const done = s.state === "failed" || s.state === "expired" || s.thumbnail_url
        || (s.detection && !s.thumbnail_url);
      if (s.thumbnail_url) await showFrame(s.thumbnail_url);
      if (done) { clearInterval(state.polling); state.polling = null; $("snapshot-button").disabled = false; }
    } catch (error) {
      $("snapshot-state").textContent = "Cannot follow the request: " + error.message;
    }
  }

  async function takeSnapshot() {
    $("snapshot-button").disabled = true;
    try {
      const s = await api("/api/stations/" + encodeURIComponent(stationId) + "/snapshots", { method: "POST" });
      state.snapshot = s.request_id;
      $("snapshot-state").textContent = describeSnapshot(s);
      $("snapshot-state").dataset.state = s.state;
      if (state.polling) clearInterval(state.polling);
      state.polling = setInterval(pollSnapshot, 1000);
    } catch (error) {
      $("snapshot-button").disabled = false;
      $("snapshot-state").dataset.state = "refused";
      $("snapshot-state").textContent = (error.status === 401
        ? "Asking a station for a picture needs an access token: enter it above. " : "") + error.message;
    }
  }

  // -- refresh -----------------------------------------------------------------------

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const days = Number($("window").value) || 7;
      const until = new Date();
      const since = new Date(until.getTime() - days * DAY_MS);
      const base = "/api/stations/" + encodeURIComponent(stationId);
      const [station, health, diel] = await Promise.all([
        api(base), api(base + "/health?since=" + encodeURIComponent(since.toISOString())
                       + "&until=" + encodeURIComponent(until.toISOString())), api("/api/diel")]);
      state.timeZone = diel.timezone;
      renderStation(station);
      renderTimeline(health);
      renderChart(health);
      showProblem("");
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      $("updated").textContent = "updated " + formatTime(new Date().toISOString(), false);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        showProblem((state.token ? "The token was refused: " : "This collector needs an access token: ")
                    + error.message);
      } else {
        showProblem("Cannot read the collector: " + error.message);
      }
    } finally {
      state.busy = false;
    }
  }

  function setToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    $("forget-token").hidden = !token;
    $("token").value = "";
    $("token").placeholder = token ? "token in use (this tab only)" : "access token (exact locations)";
    refresh();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) setToken(value);
  });
  $("forget-token").addEventListener("click", () => setToken(""));
  $("forget-token").hidden = !state.token;
  if (state.token) $("token").placeholder = "token in use (this tab only)";
  $("window").addEventListener("change", refresh);
  $("snapshot-button").addEventListener("click", takeSnapshot);
  $("refresh-s").textContent = String(refreshSeconds);

  window.camtrapStation = { refresh: refresh, state: state };
  refresh();
  setInterval(refresh, refreshSeconds * 1000);
})();
