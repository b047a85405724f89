/* Agent history: evaluation return (and win rate in boss fights) over checkpoint versions. Lines differ in
   more than colour (solid with points, dashed, dotted); the table under the chart holds every figure. */
(function () {
  "use strict";
  var el = document.getElementById("history-chart");
  var data = document.getElementById("history-data");
  if (!el || !data || typeof uPlot === "undefined") return;
  var rows = JSON.parse(data.textContent);
  if (!rows.length) return;
  var boss = el.dataset.boss === "1";
  var css = getComputedStyle(document.documentElement);
  function c(name, fb) { return (css.getPropertyValue(name) || fb).trim(); }
  var series = [{ label: "Version" },
    { label: "Evaluation return", stroke: c("--info", "#6aa6e0"), width: 2, spanGaps: true, points: { show: true, size: 6 } },
    { label: "Training mean return", stroke: c("--accent", "#e8833a"), width: 2, spanGaps: true, dash: [6, 4] }];
  var cols = [rows.map(function (r) { return r.version; }), rows.map(function (r) { return r.eval_return; }),
              rows.map(function (r) { return r.mean_return; })];
  var axes = [{ stroke: c("--text-muted", "#aaa"), grid: { stroke: c("--line", "#333") }, label: "model version" },
              { stroke: c("--text-muted", "#aaa"), grid: { stroke: c("--line", "#333") }, size: 56 }];
  var scales = { x: { time: false } };
  if (boss) {
    series.push({ label: "Win rate %", stroke: c("--ok", "#5fbf7f"), width: 3, scale: "%", spanGaps: true,
                  dash: [2, 3], points: { show: true, size: 5 } });
    cols.push(rows.map(function (r) { return r.win_rate === null ? null : r.win_rate * 100; }));
    axes.push({ scale: "%", side: 1, stroke: c("--ok", "#5fbf7f"), grid: { show: false }, size: 50 });
    scales["%"] = { range: [0, 100] };
  }
  el.innerHTML = "";
  var chart = new uPlot({ width: Math.max(el.clientWidth, 240), height: 260, series: series, axes: axes, scales: scales },
                        cols, el);
  window.addEventListener("resize", function () { chart.setSize({ width: Math.max(el.clientWidth, 240), height: 260 }); });
})();
