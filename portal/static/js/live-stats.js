/* Live charts of a campaign page: history from the stats API, then points pushed over a websocket.
 * The page works without this file: every figure is rendered on the server; this only makes it move.
 * Charts: uPlot, vendored under /static/vendor/uplot/ (never a CDN). */
(function () {
  "use strict";
  var root = document.getElementById("live-stats");
  if (!root || typeof uPlot === "undefined") return;

  var boss = root.dataset.boss === "1";
  var maxPoints = 2000;
  var state = { points: [], charts: [], updates: 0, socket: null, retry: 1000 };
  root.dataset.points = "0";
  root.dataset.updates = "0";
  root.dataset.live = "connecting";

  var css = getComputedStyle(document.documentElement);
  function color(name, fallback) { return (css.getPropertyValue(name) || fallback).trim(); }
  var ACCENT = color("--accent", "#e8833a"), OK = color("--ok", "#5fbf7f"), INFO = color("--info", "#6aa6e0"),
      WARN = color("--warn", "#e0b341"), MUTED = color("--text-muted", "#a99f94"), LINE = color("--line", "#332c26");

  function num(v, digits) {
    if (v === null || v === undefined) return "—";
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits,
                                               minimumFractionDigits: digits === undefined ? 0 : digits });
  }
  function pct(v) { return v === null || v === undefined ? "—" : num(v * 100, 0) + "%"; }
  var FORMATS = {
    model_version: function (v) { return v ? "v" + v : "—"; },
    samples_total: num, episodes_total: num, updates_total: num, clients_active: num,
    mean_return_recent: function (v) { return num(v, 2); },
    eval_return: function (v) { return num(v, 2); },
    eval_win_rate: pct, win_rate_recent: pct, wins_total: num,
    boss_hp_left_recent: pct, player_hp_left_recent: pct, eval_boss_hp_left: pct, eval_player_hp_left: pct,
  };

  function showFigures(figures) {
    Object.keys(figures || {}).forEach(function (key) {
      if (!FORMATS[key]) return;
      document.querySelectorAll('[data-figure="' + key + '"]').forEach(function (el) {
        el.textContent = FORMATS[key](figures[key]);
      });
    });
    var badge = document.querySelector("[data-status-badge]");
    if (badge && figures && figures.status) {
      badge.className = "badge badge-" + figures.status;
      badge.textContent = figures.status.charAt(0).toUpperCase() + figures.status.slice(1);
    }
    if (figures && figures.status) { root.dataset.status = figures.status; setLiveLabel(liveWord()); }
  }

  /* Each chart: a title, the series it plots (point fields), and how to label its axes. */
  /* The win rate comes first in a boss fight: it is what volunteers come for. Each chart's second series
     is dashed, so that the two are told apart without their colours. */
  var CHARTS = [
    { id: "chart-winrate", boss: true, series: [
        { field: "win_rate", label: "Win rate (last 100 fights)", stroke: OK, scale: "%", pct: true },
        { field: "boss_hp_left", label: "Boss HP left (last 100 fights)", stroke: WARN, scale: "%", pct: true }] },
    { id: "chart-return", series: [
        { field: "mean_return", label: "Mean return (last 100)", stroke: ACCENT },
        { field: "eval_return", label: "Evaluation return", stroke: INFO, points: true }] },
    { id: "chart-throughput", series: [
        { field: "samples_per_s", label: "Game steps/s", stroke: ACCENT },
        { field: "updates_per_s", label: "Updates/s", stroke: INFO, scale: "u" }] },
    { id: "chart-clients", series: [
        { field: "clients_active", label: "Machines playing", stroke: OK },
        { field: "model_version", label: "Model version", stroke: WARN, scale: "v" }] },
  ];

  /* The text alternative of a chart: each series' first and latest value, in words. */
  function summarise(def) {
    var el = document.querySelector('[data-summary="' + def.id + '"]');
    if (!el) return;
    var parts = def.series.map(function (s) {
      var values = state.points.map(function (p) { return p[s.field]; })
                              .filter(function (v) { return v !== null && v !== undefined; });
      if (!values.length) return s.label + ": no figure yet";
      var fmt = function (v) { return s.pct ? pct(v) : num(v, 2); };
      var first = values[0], last = values[values.length - 1];
      return s.label + ": " + fmt(last) + " now" + (values.length > 1 ? ", " + fmt(first) + " at the start of the chart" : "");
    });
    el.textContent = parts.join("; ") + ".";
    var box = document.getElementById(def.id);
    if (box) box.setAttribute("aria-label", el.textContent);
  }

  function columns(def) {
    var cols = [state.points.map(function (p) { return p.t; })];
    def.series.forEach(function (s) {
      cols.push(state.points.map(function (p) {
        var v = p[s.field];
        return v === null || v === undefined ? null : (s.pct ? v * 100 : v);
      }));
    });
    return cols;
  }

  function axis(scale, side, stroke) {
    return { scale: scale, side: side, stroke: stroke || MUTED, grid: { stroke: LINE, width: 1 },
             ticks: { stroke: LINE, width: 1 }, size: 56 };
  }

  /* One line per time tick, as precise as the span needs (uPlot's default two-line labels print the
     date under the first tick, where it runs into the next one). */
  function timeLabels(u, splits) {
    var span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    function pad(n) { return n < 10 ? "0" + n : "" + n; }
    return splits.map(function (t) {
      var d = new Date(t * 1000), hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
      if (span > 2 * 86400) return (d.getMonth() + 1) + "/" + d.getDate();
      if (span > 600) return hm;
      return hm + ":" + pad(d.getSeconds());
    });
  }

  function build(def) {
    var el = document.getElementById(def.id);
    if (!el) return null;
    var x = axis("x", 2);
    x.space = 70;  // px between time ticks: room for "12:34:56"
    x.values = timeLabels;
    var scales = { x: { time: true } }, axes = [x];
    var series = [{}];
    def.series.forEach(function (s, i) {
      var scale = s.scale || "y";
      if (!scales[scale]) {
        scales[scale] = s.pct ? { range: [0, 100] } : {};
        axes.push(axis(scale, axes.length === 1 ? 3 : 1, i ? s.stroke : MUTED));
      }
      series.push({ label: s.label, stroke: s.stroke, width: 2, scale: scale, spanGaps: true, dash: i ? [6, 4] : undefined,
                    points: { show: !!s.points, size: 6, fill: s.stroke },
                    value: function (u, v) { return v === null ? "—" : s.pct ? v.toFixed(1) + "%" : num(v, 2); } });
    });
    var opts = { width: Math.max(el.clientWidth, 240), height: 220, scales: scales, axes: axes, series: series,
                 cursor: { drag: { x: true, y: false } }, legend: { live: true } };
    el.innerHTML = "";
    var chart = new uPlot(opts, columns(def), el);
    chart._def = def;
    chart._el = el;
    return chart;
  }

  function redraw() {
    state.charts.forEach(function (c) { c.setData(columns(c._def)); summarise(c._def); });
    root.dataset.points = String(state.points.length);
    var empty = document.getElementById("charts-empty");
    if (empty) empty.hidden = state.points.length > 0;
  }

  function addPoint(point) {
    if (!point) return;
    var last = state.points[state.points.length - 1];
    if (last && point.t <= last.t) return;
    state.points.push(point);
    if (state.points.length > maxPoints) state.points.shift();
    redraw();
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + root.dataset.ws);
    state.socket = socket;
    socket.onopen = function () { root.dataset.live = "open"; state.retry = 1000; setLiveLabel(liveWord()); };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      // The page's other live parts (the replay viewer) hear the same socket through this event.
      document.dispatchEvent(new CustomEvent("soulsai:live", { detail: message }));
      showFigures(message.figures);
      if (message.type === "update") {
        state.updates += 1;
        root.dataset.updates = String(state.updates);
        addPoint(message.point);
      }
    };
    socket.onclose = function (event) {
      root.dataset.live = "closed";
      setLiveLabel("reconnecting…");
      if (event.code === 4404) return;  // no such campaign (any more): nothing to wait for
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 30000);
    };
  }

  /* "live" only while the campaign runs: a stopped or paused campaign's figures no longer move. */
  function liveWord() {
    var status = root.dataset.status;
    if (status === "stopped") return "stopped: final figures";
    if (status === "paused") return "paused";
    return root.dataset.live === "open" ? "live" : "reconnecting…";
  }

  function setLiveLabel(text) {
    var el = document.getElementById("live-indicator");
    if (el) { el.textContent = text; el.dataset.state = text === "live" ? "on" : "off"; }
  }

  window.addEventListener("resize", function () {
    state.charts.forEach(function (c) { c.setSize({ width: Math.max(c._el.clientWidth, 240), height: 220 }); });
  });

  fetch(root.dataset.api, { headers: { Accept: "application/json" } })
    .then(function (r) { return r.ok ? r.json() : { points: [] }; })
    .catch(function () { return { points: [] }; })
    .then(function (data) {
      state.points = data.points || [];
      root.classList.add("charts-ready");  // first: a hidden box has no width to size the charts by
      state.charts = CHARTS.filter(function (d) { return boss || !d.boss; }).map(build).filter(Boolean);
      redraw();
      connect();
    });
})();
