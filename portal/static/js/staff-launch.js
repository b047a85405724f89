/* The launch form: every hyperparameter as a field with its default for the chosen algorithm and
 * environment, written into the JSON overrides as it changes; the slug filled in from the name.
 * Without this file the JSON field alone works (the server checks it the same way). */
(function () {
  "use strict";
  var form = document.getElementById("campaign-form");
  var table = document.getElementById("hp-defaults");
  if (!form || !table) return;
  var defaults = JSON.parse(table.textContent);
  var json = form.elements.hyperparams, env = form.elements.env_id, algo = form.elements.algorithm;
  var grid = document.getElementById("hp-grid"), box = document.getElementById("hp-fields");

  function overrides() {
    try { var v = JSON.parse(json.value || "{}"); return v && typeof v === "object" && !Array.isArray(v) ? v : null; }
    catch (e) { return null; }
  }
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  function parse(row, text) {
    text = text.trim();
    if (row.kind === "bool") return text === "true";
    if (row.kind === "str") return text;  /* a name such as "qr": never read as a number */
    if (row.kind === "list") return text.split(/[\s,]+/).filter(Boolean).map(Number);
    var n = Number(text);
    return text === "" || isNaN(n) ? text : n;
  }
  function show(row, value) { return row.kind === "list" ? value.join(", ") : String(value); }

  var shown = null;  /* the algorithm and environment the fields are for: redrawn only when they change */
  function render(force) {
    var key = algo.value + " " + env.value.trim();
    if (key === shown && force !== true) return;
    shown = key;
    var rows = (defaults[algo.value] || {})[env.value.trim()];
    var current = overrides();
    box.hidden = !rows;
    if (!rows) return;
    box.querySelector("[data-hp-for]").textContent = algo.options[algo.selectedIndex].text + " on " + env.value.trim();
    grid.innerHTML = "";
    rows.forEach(function (row) {
      var id = "hp-" + row.name, value = current && row.name in current ? current[row.name] : row.default;
      var wrap = document.createElement("div");
      wrap.className = "field";
      var label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = row.name;
      var input;
      if (row.kind === "bool") {
        input = document.createElement("select");
        ["true", "false"].forEach(function (v) { var o = document.createElement("option"); o.value = o.textContent = v; input.appendChild(o); });
        input.value = String(value);
      } else {
        input = document.createElement("input");
        input.type = "text";
        input.value = show(row, value);
        input.placeholder = show(row, row.default);
      }
      input.id = input.name = id;
      input.dataset.default = JSON.stringify(row.default);
      var help = document.createElement("p");
      help.className = "help";
      help.textContent = (row.help ? row.help + " · " : "") + "default " + show(row, row.default);
      input.addEventListener("change", function () { write(rows); });
      wrap.appendChild(label); wrap.appendChild(input); wrap.appendChild(help);
      grid.appendChild(wrap);
    });
  }

  /* The JSON keeps what differs from the defaults (and any name the fields do not show: the server says
     what is wrong with it). */
  function write(rows) {
    var out = overrides() || {};
    rows.forEach(function (row) {
      var input = document.getElementById("hp-" + row.name);
      var value = parse(row, input.value);
      if (same(value, row.default)) delete out[row.name]; else out[row.name] = value;
    });
    json.value = JSON.stringify(out, null, 1);
  }

  env.addEventListener("change", render);
  env.addEventListener("input", render);
  algo.addEventListener("change", render);
  json.addEventListener("change", function () { render(true); });
  render();

  var name = form.elements.name, slug = form.elements.slug, typed = slug.value !== "";
  slug.addEventListener("input", function () { typed = slug.value !== ""; });
  name.addEventListener("input", function () {
    if (typed) return;
    slug.value = name.value.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 50);
  });
})();
