/* Home page: refresh the running campaigns' figures every few seconds from the JSON API. */
(function () {
  "use strict";
  var cards = document.querySelectorAll("[data-campaign-card]");
  if (!cards.length || !window.fetch) return;
  function fmt(key, v) {
    if (v === null || v === undefined) return "—";
    if (key === "mean_return_recent") return Number(v).toFixed(1);
    if (key === "model_version") return v ? "v" + v : "—";
    if (key === "win_rate_recent" || key === "boss_hp_left_recent") return Math.round(v * 100) + "%";
    return Number(v).toLocaleString("en-US");
  }
  function refresh() {
    fetch("/api/campaigns/").then(function (r) { return r.json(); }).then(function (data) {
      (data.campaigns || []).forEach(function (c) {
        var card = document.querySelector('[data-campaign-card="' + c.slug + '"]');
        if (!card) return;
        card.querySelectorAll("[data-field]").forEach(function (el) { el.textContent = fmt(el.dataset.field, c[el.dataset.field]); });
      });
    }).catch(function () {});
  }
  setInterval(refresh, 5000);
})();
