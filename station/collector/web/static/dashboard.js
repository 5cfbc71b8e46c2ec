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
                  diel: [], blobUrls: new Map(), last: {}, refreshes: 0, busy: false,
                  me: { exact: false, name: null, can_verify: false }, editing: null, confusion: null };

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

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: headers(), cache: "no-store" }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || response.status + " " + response.statusText);
    }
    return body;
  }

  // The one write: a researcher's verification, sent with the token in a header (never a cookie).
  function postVerification(eventId, tag, species) {
    return api("/api/detections/" + encodeURIComponent(eventId) + "/verifications", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, headers()),
      body: JSON.stringify({ tag: tag, species: species || null }),
    });
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

  // -- verifying ------------------------------------------------------------------

  function tagNames() {
    return [...$("filter-tag").options].map((o) => o.value).filter((v) => v);
  }

  function machineSays(d) {
    return d.classification_status === "ok" ? d.tag + (d.species ? " · " + d.species : "") : "classification failed";
  }

  function verificationLine(d) {
    const v = d.verification;
    if (!v) return el("div", { class: "verification none", text: "not verified" });
    const agrees = d.classification_status === "ok" && v.tag === d.tag
      && (!v.species || v.species === String(d.species || "").toLowerCase());
    return el("div", { class: "verification " + (agrees ? "confirmed" : "corrected"),
                       title: "verified " + v.verified_at },
      (agrees ? "✓ confirmed: " : "✎ corrected: ") + v.tag + (v.species ? " · " + v.species : ""),
      el("span", { class: "sub", text: "by " + v.verified_by + ", " + formatTime(v.verified_at)
                                        + (agrees ? "" : " (machine: " + machineSays(d) + ")") }));
  }

  async function verify(card, d, tag, species) {
    const problem = card.querySelector(".verify-problem");
    problem.textContent = "";
    for (const b of card.querySelectorAll(".actions button")) b.disabled = true;
    try {
      const answer = await postVerification(d.event_id, tag, species);
      d.verification = answer.item;  // shown at once; the refresh brings the rest
      card.dataset.verified = answer.item.tag;
      card.querySelector(".verification").replaceWith(verificationLine(d));
      const form = card.querySelector("form.correct");
      if (form) form.remove();
      for (const b of card.querySelectorAll(".actions button")) b.disabled = false;
      state.editing = null;
      delete state.last.detections;
      delete state.last.confusion;
      await refresh();
    } catch (error) {
      problem.textContent = "Not saved: " + error.message;
      for (const b of card.querySelectorAll(".actions button")) b.disabled = false;
    }
  }

  function correctionForm(card, d) {
    const select = el("select", { class: "verify-tag", "aria-label": "verified tag" },
      ...tagNames().map((t) => el("option", { value: t, text: t })));
    const current = d.verification || { tag: d.tag, species: d.species };
    select.value = current.tag;
    const species = el("input", { class: "verify-species", type: "text", maxLength: 64, spellcheck: false,
                                  placeholder: "species (optional)", value: current.species || "" });
    species.setAttribute("list", "species-names");
    const form = el("form", { class: "correct" }, select, species,
      el("button", { type: "submit", class: "save", text: "Save" }),
      el("button", { type: "button", class: "cancel", text: "Cancel" }));
    const noSpecies = () => {
      species.disabled = select.value === "blank" || select.value === "unknown";
      if (species.disabled) species.value = "";
    };
    select.addEventListener("change", noSpecies);
    noSpecies();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      verify(card, d, select.value, species.value.trim());
    });
    form.querySelector(".cancel").addEventListener("click", () => {
      state.editing = null;
      form.remove();
    });
    return form;
  }

  function verifyActions(card, d) {
    const actions = el("div", { class: "actions" });
    if (d.classification_status === "ok" && d.tag !== "unknown") {
      const confirm = el("button", { type: "button", class: "confirm", text: "Confirm",
                                     title: "the machine is right: " + machineSays(d) });
      // blank and unknown name no species (the machine may have kept the label it saw)
      const named = d.tag === "blank" ? null : d.species;
      confirm.addEventListener("click", () => verify(card, d, d.tag, named));
      actions.append(confirm);
    }
    const correct = el("button", { type: "button", class: "correct-open", text: "Correct…" });
    correct.addEventListener("click", () => {
      if (card.querySelector("form.correct")) return;
      state.editing = d.event_id;
      card.querySelector(".body").append(correctionForm(card, d));
      card.querySelector(".verify-tag").focus();
    });
    const blank = el("button", { type: "button", class: "blank", text: "Blank", title: "nothing of interest" });
    blank.addEventListener("click", () => verify(card, d, "blank", null));
    actions.append(correct, blank);
    return actions;
  }

  function drawBox(wrap, d) {
    const box = d.classification_status === "ok" && d.payload ? d.payload.best_box : null;
    if (!box || box.length !== 4) return;
    const mark = el("div", { class: "box", title: "what the machine looked at" });
    mark.style.left = (100 * box[0]).toFixed(2) + "%";
    mark.style.top = (100 * box[1]).toFixed(2) + "%";
    mark.style.width = (100 * box[2]).toFixed(2) + "%";
    mark.style.height = (100 * box[3]).toFixed(2) + "%";
    wrap.append(mark);
  }

  function renderDetections(data) {
    const list = $("detections");
    list.replaceChildren();
    for (const d of data.items) {
      let picture;
      if (d.thumbnail_url) {
        const img = el("img", { class: "thumb", alt: (d.species || d.tag) + " at " + d.station_id, loading: "lazy",
                                decoding: "async" });
        thumbnailSource(img, d).catch(() => {});
        picture = el("div", { class: "thumb-wrap" }, img);
        drawBox(picture, d);
      } else {
        picture = el("div", { class: "thumb no-thumb", text: "no picture" });
      }
      const confidence = d.confidence === null ? "" : " · " + Math.round(d.confidence * 100) + " %";
      const card = el("li", { class: "card", "data-event-id": d.event_id,
                              "data-verified": d.verification ? d.verification.tag : "" },
        picture,
        el("div", { class: "body" },
          el("div", { class: "what" },
            el("span", { class: "species", text: d.species || d.label || d.tag }),
            el("span", { class: "tag tag-" + d.tag, text: d.tag })),
          el("div", { class: "meta", text: d.station_id + confidence }),
          el("div", { class: "meta", title: d.start_time, text: formatTime(d.start_time) }),
          verificationLine(d)));
      if (state.me.can_verify) {
        card.querySelector(".body").append(verifyActions(card, d), el("div", { class: "verify-problem",
                                                                              role: "alert" }));
      }
      list.append(card);
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
    if ($("filter-verified").value) query.set("verified", $("filter-verified").value);
    return "/api/detections?" + query.toString();
  }

  // -- field accuracy ---------------------------------------------------------------

  function percent(part, whole) {
    return whole ? Math.round(100 * part / whole) + " %" : "—";
  }

  function drawConfusion() {
    const data = state.confusion;
    if (!data) return;
    const chosen = $("confusion-station").value;
    const block = chosen ? data.stations.find((s) => s.station_id === chosen) : data.overall;
    const empty = !block || block.verified === 0;
    $("confusion-empty").hidden = !empty;
    const table = $("confusion");
    table.tHead.replaceChildren();
    table.tBodies[0].replaceChildren();
    if (empty) {
      $("confusion-summary").textContent = "";
      return;
    }
    // Only the tags that occur, either side: a compact matrix.
    const used = data.tags.map((t, i) => i).filter((i) =>
      block.matrix[i].some((n) => n > 0) || block.matrix.some((row) => row[i] > 0));
    table.tHead.append(el("tr", {}, el("th", { text: "machine ↓ · verified →" }),
      ...used.map((j) => el("th", { class: "num", scope: "col", text: data.tags[j] }))));
    for (const i of used) {
      table.tBodies[0].append(el("tr", { "data-machine": data.tags[i] },
        el("th", { scope: "row", text: data.tags[i] }),
        ...used.map((j) => el("td", { class: "num cell" + (i === j ? " agree" : "")
                                              + (block.matrix[i][j] === 0 ? " zero" : ""),
                                      "data-verified": data.tags[j], text: String(block.matrix[i][j]) }))));
    }
    const species = block.species.compared
      ? " · species right on " + block.species.agreed + " of " + block.species.compared
        + " (" + percent(block.species.agreed, block.species.compared) + ")" : "";
    $("confusion-summary").textContent = "Machine tag right on " + block.agreed + " of " + block.verified
      + " verified events (" + percent(block.agreed, block.verified) + ")" + species;
  }

  function renderConfusion(data) {
    state.confusion = data;
    const select = $("confusion-station");
    const chosen = select.value;
    const ids = data.stations.map((s) => s.station_id);
    if (changed("confusion-options", ids)) {
      select.replaceChildren(el("option", { value: "", text: "all stations" }),
        ...ids.map((id) => el("option", { value: id, text: id })));
      select.value = ids.includes(chosen) ? chosen : "";
    }
    const body = $("confusion-stations").tBodies[0];
    body.replaceChildren(...data.stations.map((s) => el("tr", { "data-station": s.station_id },
      el("td", { text: s.station_id }), el("td", { class: "num", text: String(s.verified) }),
      el("td", { class: "num accuracy", text: s.agreed + " (" + percent(s.agreed, s.verified) + ")" }))));
    drawConfusion();
  }

  function renderSpeciesNames(species) {
    $("species-names").replaceChildren(...species.items.map((i) => el("option", { value: i.species })));
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
      const [diel, stations, species, detections, confusion] = await Promise.all(
        [api("/api/diel"), api("/api/stations"), api("/api/species"), api(detectionsPath()),
         api("/api/verifications/confusion")]);
      state.timeZone = diel.timezone;
      renderStations(stations);
      if (changed("species", species)) {
        renderSpecies(species);
        renderSpeciesNames(species);
      }
      if (changed("diel", diel)) renderDiel(diel);
      // A correction being typed is not redrawn away; the next refresh after it shows it.
      if (state.editing === null && changed("detections", detections)) renderDetections(detections);
      if (changed("confusion", confusion)) renderConfusion(confusion);
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

  // What this token may do: exact locations, and verifying (a named token).
  async function whoami() {
    try {
      state.me = await api("/api/whoami");
    } catch (error) {
      state.me = { exact: false, name: null, can_verify: false };
    }
    const hint = $("verify-hint");
    hint.hidden = !state.token;
    hint.textContent = state.me.can_verify ? "Verifying as " + state.me.name
        + ": confirm the machine's tag, correct it, or mark the event blank."
      : "This token reads exact locations but may not verify (it has no name in the token file).";
  }

  async function setToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    for (const url of state.blobUrls.values()) URL.revokeObjectURL(url);
    state.blobUrls.clear();
    state.last = {};
    state.editing = null;
    $("forget-token").hidden = !token;
    $("token").value = "";
    $("token").placeholder = token ? "token in use (this tab only)" : "access token (exact locations)";
    await whoami();
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
  $("confusion-station").addEventListener("change", drawConfusion);
  for (const id of ["filter-station", "filter-tag", "filter-verified"]) {
    $(id).addEventListener("change", () => { delete state.last.detections; refresh(); });
  }
  $("refresh-s").textContent = String(refreshSeconds);

  window.camtrapDashboard = { refresh: refresh, state: state };
  (state.token ? whoami() : Promise.resolve()).then(refresh);
  setInterval(refresh, refreshSeconds * 1000);
})();
