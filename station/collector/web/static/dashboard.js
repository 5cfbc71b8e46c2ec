// Camera-trap collector dashboard: reads the collector's JSON API and redraws every few
// seconds. Plain JavaScript, no build step; charts by the vendored Chart.js (window.Chart).
// Every text from the database goes in through textContent, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "camtrap-collector-token";
  const DETECTIONS_SHOWN = 24;
  const SILENT_WARN_S = 15 * 60;
  const params = new URLSearchParams(location.search);
  const refreshSeconds = Math.min(3600, Math.max(1, Number(params.get("refresh")) || 10));
  const SPECIES_COLOURS = {
    "leopard": "#d98a1f", "amur leopard": "#d98a1f", "tiger": "#b3321f", "amur tiger": "#b3321f",
  };
  const PALETTE = ["#2f6f4f", "#4c7fb8", "#8a6bbd", "#5f9e8f", "#b8a04c", "#9a5b7a", "#6c8c3a", "#557a95"];

  const $ = (id) => document.getElementById(id);
  const state = { timeZone: "UTC", token: sessionStorage.getItem(TOKEN_KEY) || "", chart: null,
                  diel: [], blobUrls: new Map(), last: {}, refreshes: 0, busy: false };

  // -- helpers --------------------------------------------------------------------

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

  async function api(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || response.status + " " + response.statusText);
    }
    return body;
  }

  function formatTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: state.timeZone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    }).format(date);
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " days ago";
  }

  function megabytes(mb) {
    if (mb === null || mb === undefined) return "—";
    return mb >= 1024 ? (mb / 1024).toFixed(1) + " GB" : Math.round(mb) + " MB";
  }

  function colour(species, index) {
    return SPECIES_COLOURS[String(species).toLowerCase()] || PALETTE[index % PALETTE.length];
  }

  function changed(key, data) {
    const text = JSON.stringify(data);
    if (state.last[key] === text) return false;
    state.last[key] = text;
    return true;
  }

  // -- stations -------------------------------------------------------------------

  function renderStations(data) {
    const body = $("stations").tBodies[0];
    body.replaceChildren();
    for (const s of data.items) {
      const status = s.online === null ? el("span", { class: "badge neutral", text: "unknown" })
        : el("span", { class: "badge " + (s.online ? "online" : "offline"), text: s.online ? "online" : "offline" });
      const silent = s.silent_s !== null && s.silent_s > SILENT_WARN_S;
      const heard = el("td", { title: s.last_heard || "" }, ago(s.silent_s),
        el("span", { class: "sub", text: formatTime(s.last_heard) }));
      if (silent && s.online) heard.append(el("span", { class: "badge warn", text: "silent" }));
      if (s.clock_skew_s !== null && s.clock_skew_s !== undefined) {
        heard.append(el("span", { class: "badge warn", text: "clock ahead",
                                  title: "its clock runs " + Math.round(s.clock_skew_s) + " s ahead" }));
      }
      const loc = s.latitude === null ? el("td", { class: "muted", text: "—" })
        : el("td", {}, s.latitude.toFixed(4) + ", " + s.longitude.toFixed(4),
          el("span", { class: "sub", text: (s.location_generalised ? "generalised, ±" : "exact, ±")
            + (s.coordinate_uncertainty_m === null ? "?" : Math.round(s.coordinate_uncertainty_m)) + " m" }));
      const outbox = el("td", { class: "num outbox" }, s.outbox_depth === null ? "—" : String(s.outbox_depth));
      if (s.outbox_full) outbox.append(el("span", { class: "sub", text: "full" }));
      body.append(el("tr", { "data-station": s.station_id },
        el("td", {}, el("strong", {}, el("a", { class: "station-link", href: "/stations/" + encodeURIComponent(s.station_id),
                                                text: s.station_id })),
          el("span", { class: "sub", text: s.deployment_id || "" })),
        el("td", { class: "state" }, status,
          el("span", { class: "sub", text: s.status ? s.status.reason.replace("_", " ") : "" })),
        heard,
        el("td", { class: "num disk" + (s.disk_low ? " low" : ""), text: megabytes(s.disk_free_mb) }),
        outbox,
        el("td", { text: s.camera_state || "—" }),
        el("td", { text: formatTime(s.last_detection_at) }),
        loc));
    }
    $("stations-empty").hidden = data.items.length > 0;
    const select = $("filter-station");
    const chosen = select.value;
    const ids = data.items.map((s) => s.station_id);
    if (changed("station-options", ids)) {
      select.replaceChildren(el("option", { value: "", text: "all" }),
        ...ids.map((id) => el("option", { value: id, text: id })));
      select.value = ids.includes(chosen) ? chosen : "";
    }
    const badge = $("view-badge");
    badge.className = "badge " + (data.location_generalised ? "public" : "exact");
    badge.textContent = data.location_generalised
      ? "public view · locations generalised to " + data.grid_deg + "°" : "restricted view · exact locations";
  }

  // -- species counts -------------------------------------------------------------

  function renderSpecies(data) {
    const body = $("species").tBodies[0];
    body.replaceChildren();
    const most = data.items.length ? data.items[0].count : 1;
    data.items.forEach((item, index) => {
      const bar = el("div", { class: "bar" });
      bar.style.width = (100 * item.count / most).toFixed(1) + "%";
      bar.style.background = colour(item.species, index);
      body.append(el("tr", { "data-species": item.species },
        el("td", { class: "species-name", text: item.species }),
        el("td", { class: "num count", text: String(item.count) }),
        el("td", {}, bar)));
    });
    $("species-empty").hidden = data.items.length > 0;
  }

  // -- diel activity chart --------------------------------------------------------

  function dielDatasets() {
    const chosen = $("diel-species").value;
    const series = state.diel.filter((s) => !chosen || s.species === chosen);
    return series.map((s) => {
      const index = state.diel.indexOf(s);
      return { label: s.species, data: s.counts.slice(), backgroundColor: colour(s.species, index),
               borderWidth: 0, borderRadius: 2 };
    });
  }

  function drawDiel() {
    const datasets = dielDatasets();
    if (state.chart) {
      state.chart.data.datasets = datasets;
      state.chart.update();
      return;
    }
    const labels = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0"));
    state.chart = new Chart($("diel-chart"), {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, title: { display: true, text: "hour of day" }, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "detections" },
               ticks: { precision: 0 } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { title: (items) => items[0].label + ":00–" + items[0].label + ":59" } },
        },
      },
    });
  }

  function renderDiel(data) {
    state.diel = data.series;
    $("diel-tz").textContent = data.timezone;
    const select = $("diel-species");
    const chosen = select.value;
    const names = data.series.map((s) => s.species);
    if (changed("diel-options", names)) {
      select.replaceChildren(el("option", { value: "", text: "all species" }),
        ...names.map((n) => el("option", { value: n, text: n })));
      select.value = names.includes(chosen) ? chosen : "";
    }
    drawDiel();
  }

  // -- detections -----------------------------------------------------------------

  async function thumbnailSource(img, item) {
    if (!state.token) {
      img.src = item.thumbnail_url;  // public collector: the browser caches it (immutable)
      return;
    }
    // An <img> cannot send the Authorization header: fetch it, show it from a blob URL.
    let url = state.blobUrls.get(item.event_id);
    if (!url) {
      const response = await fetch(item.thumbnail_url, { headers: headers() });
      if (!response.ok) return;
      url = URL.createObjectURL(await response.blob());
      state.blobUrls.set(item.event_id, url);
    }
    img.src = url;
  }

  function renderDetections(data) {
    const list = $("detections");
    list.replaceChildren();
    for (const d of data.items) {
      let picture;
      if (d.thumbnail_url) {
        picture = el("img", { class: "thumb", alt: (d.species || d.tag) + " at " + d.station_id, loading: "lazy",
                              decoding: "async" });
        thumbnailSource(picture, d).catch(() => {});
      } else {
        picture = el("div", { class: "thumb no-thumb", text: "no picture" });
      }
      const confidence = d.confidence === null ? "" : " · " + Math.round(d.confidence * 100) + " %";
      list.append(el("li", { class: "card", "data-event-id": d.event_id },
        picture,
        el("div", { class: "body" },
          el("div", { class: "what" },
            el("span", { class: "species", text: d.species || d.label || d.tag }),
            el("span", { class: "tag tag-" + d.tag, text: d.tag })),
          el("div", { class: "meta", text: d.station_id + confidence }),
          el("div", { class: "meta", title: d.start_time, text: formatTime(d.start_time) }))));
    }
    $("detections-empty").hidden = data.items.length > 0;
    var total = data.total.toLocaleString("en") + (data.total_is_lower_bound ? "+" : "");
    const skipped = (data.skipped || []).length;
    $("detections-count").textContent = (data.total > data.items.length
      ? "(" + data.items.length + " of " + total + ")" : "(" + total + ")")
      + (skipped ? " · " + skipped + " stored detection(s) could not be shown" : "");
  }

  function detectionsPath() {
    const query = new URLSearchParams({ limit: String(DETECTIONS_SHOWN) });
    if ($("filter-station").value) query.set("station", $("filter-station").value);
    if ($("filter-tag").value) query.set("tag", $("filter-tag").value);
    return "/api/detections?" + query.toString();
  }

  // -- refresh --------------------------------------------------------------------

  function showProblem(message) {
    const box = $("problem");
    box.hidden = !message;
    box.textContent = message || "";
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const [diel, stations, species, detections] = await Promise.all(
        [api("/api/diel"), api("/api/stations"), api("/api/species"), api(detectionsPath())]);
      state.timeZone = diel.timezone;
      renderStations(stations);
      if (changed("species", species)) renderSpecies(species);
      if (changed("diel", diel)) renderDiel(diel);
      if (changed("detections", detections)) renderDetections(detections);
      showProblem("");
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      $("updated").textContent = "updated " + new Intl.DateTimeFormat("en-GB", {
        timeZone: state.timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date());
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        showProblem((state.token ? "The token was refused: " : "This collector needs an access token: ")
                    + error.message);
        $("token").focus();
      } else {
        showProblem("Cannot read the collector: " + error.message + " (showing the last data)");
      }
    } finally {
      state.busy = false;
    }
  }

  function setToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    for (const url of state.blobUrls.values()) URL.revokeObjectURL(url);
    state.blobUrls.clear();
    state.last = {};
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
  $("diel-species").addEventListener("change", drawDiel);
  for (const id of ["filter-station", "filter-tag"]) {
    $(id).addEventListener("change", () => { delete state.last.detections; refresh(); });
  }
  $("refresh-s").textContent = String(refreshSeconds);

  window.camtrapDashboard = { refresh: refresh, state: state };
  refresh();
  setInterval(refresh, refreshSeconds * 1000);
})();
