/* The replay viewer: an evaluation episode's trace drawn on a canvas (templates/campaigns/_replay.html).
 *
 * A boss fight: the arena from above, the agent and Iudex with their facing, Iudex's reach (shaded while
 * he attacks), HP bars, each one's animation (Iudex's animation table, from the replay's JSON) and the
 * agent's action. Any other environment: reward and action per step, with the return so far.
 * Play, pause, speed 1x/2x/4x and a scrubber; "won" or "lost" at the end. The current frame is also
 * told in words ([data-replay-text] and the canvas's aria-label), which is what tests read.
 * The campaign page's viewer loads the newest replay, and every new one the page's live websocket
 * announces (live-stats.js re-dispatches its messages as the "soulsai:live" event).
 */
(function () {
  "use strict";
  var css = getComputedStyle(document.documentElement);
  function colour(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  var C = {
    bg: colour("--bg-sunken", "#0f0d0b"), line: colour("--line", "#332c26"), text: colour("--text", "#ece6df"),
    muted: colour("--text-muted", "#a99f94"), agent: colour("--info", "#6aa6e0"), boss: colour("--danger", "#e0605a"),
    ok: colour("--ok", "#5fbf7f"), warn: colour("--warn", "#e0b341"), accent: colour("--accent", "#e8833a"),
  };
  var lists = {};  // list URL -> promise of the list's JSON (one fetch per page)

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }
  function list(url) { return lists[url] || (lists[url] = getJSON(url)); }
  function pct(v) { return Math.round(v * 100) + "%"; }
  function deg(yaw) { var d = Math.round(yaw * 180 / Math.PI); return d <= -180 ? d + 360 : d; }
  function fixed(v, n) { return Number(v).toFixed(n); }
  function outcomeWord(r) { return r.won === true ? "won" : r.won === false ? "lost" : null; }

  function Viewer(root) {
    this.root = root;
    this.el = function (name) { return root.querySelector("[data-replay-" + name + "]"); };
    this.canvas = this.el("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.data = null; this.i = 0; this.playing = false; this.speed = 1; this.acc = 0; this.last = 0;
    var self = this;
    this.el("play").addEventListener("click", function () { self.playing ? self.pause() : self.play(); });
    root.querySelectorAll("[data-replay-speed]").forEach(function (b) {
      b.addEventListener("click", function () { self.setSpeed(Number(b.dataset.replaySpeed)); });
    });
    this.el("scrub").addEventListener("input", function (e) { self.pause(); self.show(Number(e.target.value)); });
  }

  Viewer.prototype.load = function (replay) {
    this.pause();
    this.data = replay;
    this.n = replay.length;
    this.fight = replay.kind === "fight";
    this.f = replay.frames;
    if (!this.fight) {  // the return so far, for the words and the plot
      var sum = 0;
      this.cumulative = this.f.reward.map(function (r) { sum += r; return sum; });
      this.rewardMax = Math.max.apply(null, this.f.reward.map(Math.abs).concat([1e-9]));
    }
    var scrub = this.el("scrub");
    scrub.max = String(this.n - 1);
    this.el("viewer").hidden = false;
    var empty = this.root.querySelector("[data-replay-empty]");
    if (empty) empty.hidden = true;
    this.root.dataset.replayId = String(replay.id);
    var links = this.el("links");
    links.textContent = "";
    links.append("Checkpoint v" + replay.model_version + " · " + new Date(replay.created).toLocaleString() + " · ");
    var model = document.createElement("a"); model.href = replay.model_url; model.textContent = "model";
    var json = document.createElement("a"); json.href = replay.url; json.textContent = "JSON";
    links.append(model, " · ", json);
    this.show(0);
  };

  Viewer.prototype.setSpeed = function (speed) {
    this.speed = speed;
    this.root.querySelectorAll("[data-replay-speed]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.replaySpeed) === speed));
    });
  };

  Viewer.prototype.play = function () {
    if (!this.data) return;
    if (this.i >= this.n - 1) this.show(0);
    this.playing = true; this.acc = 0; this.last = performance.now();
    this.root.dataset.state = "playing";
    var button = this.el("play"); button.textContent = "Pause"; button.setAttribute("aria-label", "Pause");
    this.el("text").setAttribute("aria-live", "off");  // words every tenth of a second would drown a reader
    var self = this;
    requestAnimationFrame(function tick(now) {
      if (!self.playing) return;
      var stepS = (self.data.arena && self.data.arena.step_seconds) || 0.1;
      self.acc += (now - self.last) / 1000 * self.speed; self.last = now;
      var steps = Math.floor(self.acc / stepS);
      if (steps > 0) { self.acc -= steps * stepS; self.show(Math.min(self.i + steps, self.n - 1)); }
      if (self.i >= self.n - 1) { self.pause(); return; }
      requestAnimationFrame(tick);
    });
  };

  Viewer.prototype.pause = function () {
    if (!this.data) return;
    this.playing = false;
    this.root.dataset.state = this.i >= this.n - 1 ? "ended" : "paused";
    var button = this.el("play"); button.textContent = "Play"; button.setAttribute("aria-label", "Play");
    this.el("text").setAttribute("aria-live", "polite");
  };

  Viewer.prototype.show = function (i) {
    this.i = Math.max(0, Math.min(i, this.n - 1));
    this.el("scrub").value = String(this.i);
    this.root.dataset.step = String(this.i + 1);
    var words = this.fight ? this.describeFight(this.i) : this.describeSteps(this.i);
    var end = this.i === this.n - 1;
    var result = this.el("result");
    if (end) {
      var word = outcomeWord(this.data);
      words += word ? " The agent " + word + " the fight." : " Episode over: return " + fixed(this.data.episode_return, 2) + " in " + this.n + " steps.";
      result.textContent = word ? (word === "won" ? "Won" : "Lost") + ": the agent " + word + " this fight." : "Episode over.";
      result.dataset.outcome = word || "over";
      if (!this.playing) this.root.dataset.state = "ended";
    } else {
      result.textContent = ""; delete result.dataset.outcome;
    }
    this.el("text").textContent = words;
    this.canvas.setAttribute("aria-label", words);
    if (this.fight) this.drawFight(this.i, end); else this.drawSteps(this.i, end);
  };

  Viewer.prototype.frame = function (i) {
    var f = this.f, t = this.data.tables;
    var name = function (table, id) { return id >= 0 && id < table.length ? table[id] : "unknown"; };
    return {
      px: f.player_x[i], py: f.player_y[i], pyaw: f.player_yaw[i], bx: f.boss_x[i], by: f.boss_y[i], byaw: f.boss_yaw[i],
      php: f.player_hp[i], psp: f.player_sp[i], bhp: f.boss_hp[i], phase: f.phase[i],
      panim: name(t.player_animations, f.player_animation[i]), banim: name(t.boss_animations, f.boss_animation[i]),
      action: name(t.actions, f.action[i]), reward: f.reward[i],
    };
  };

  Viewer.prototype.describeFight = function (i) {
    var s = this.frame(i);
    var dist = Math.hypot(s.px - s.bx, s.py - s.by);
    return "Step " + (i + 1) + " of " + this.n + " (" + fixed((i + 1) * 0.1, 1) + " s). " +
      "Agent at (" + fixed(s.px, 1) + ", " + fixed(s.py, 1) + ") facing " + deg(s.pyaw) + "°, HP " + pct(s.php) +
      ", stamina " + pct(Math.max(0, s.psp)) + ", animation " + s.panim + "; action: " + s.action + ". " +
      "Iudex at (" + fixed(s.bx, 1) + ", " + fixed(s.by, 1) + ") facing " + deg(s.byaw) + "°, HP " + pct(s.bhp) +
      ", animation " + s.banim + " (phase " + s.phase + "). Distance " + fixed(dist, 1) + " m.";
  };

  Viewer.prototype.describeSteps = function (i) {
    return "Step " + (i + 1) + " of " + this.n + ": action " + this.f.action[i] + ", reward " +
      fixed(this.f.reward[i], 2) + ", return so far " + fixed(this.cumulative[i], 2) + ".";
  };

  Viewer.prototype.bar = function (x, y, w, label, value, fill) {
    var ctx = this.ctx;
    ctx.fillStyle = C.line; ctx.fillRect(x, y, w, 10);
    ctx.fillStyle = fill; ctx.fillRect(x, y, w * Math.max(0, Math.min(1, value)), 10);
    ctx.fillStyle = C.text; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "left";
    ctx.fillText(label + " " + pct(Math.max(0, value)), x, y - 3);
  };

  Viewer.prototype.drawFight = function (i, end) {
    var ctx = this.ctx, W = this.canvas.width, H = this.canvas.height, s = this.frame(i), a = this.data.arena;
    var top = 56, size = H - top - 34, v = this.view(), scale = size / (2 * v.half);
    var cx = W / 2, cy = top + size / 2;
    var X = function (x) { return cx + (x - v.x) * scale; };
    var Y = function (y) { return cy - (y - v.y) * scale; };
    ctx.fillStyle = C.bg; ctx.fillRect(0, 0, W, H);
    ctx.save(); ctx.beginPath(); ctx.rect(0, top - 4, W, size + 8); ctx.clip();
    ctx.strokeStyle = C.line; ctx.lineWidth = 1;  // a 2 m grid, and the arena's wall where it is in view
    for (var g = Math.ceil((v.x - v.half * 1.5) / 2) * 2; g < v.x + v.half * 1.5; g += 2) { ctx.beginPath(); ctx.moveTo(X(g), 0); ctx.lineTo(X(g), H); ctx.stroke(); }
    for (g = Math.ceil((v.y - v.half * 1.5) / 2) * 2; g < v.y + v.half * 1.5; g += 2) { ctx.beginPath(); ctx.moveTo(0, Y(g)); ctx.lineTo(W, Y(g)); ctx.stroke(); }
    ctx.strokeStyle = C.muted; ctx.lineWidth = 3;
    ctx.beginPath(); ctx.arc(X(a.center[0]), Y(a.center[1]), a.radius * scale, 0, 2 * Math.PI); ctx.stroke();
    // Iudex's reach, shaded while an attack animation plays.
    var attacking = /^Attack|^ThrowAtk/.test(s.banim);
    ctx.beginPath(); ctx.arc(X(s.bx), Y(s.by), a.boss_reach * scale, 0, 2 * Math.PI);
    ctx.fillStyle = attacking ? "rgba(224, 96, 90, 0.28)" : "rgba(224, 96, 90, 0.08)"; ctx.fill();
    ctx.setLineDash([4, 4]); ctx.strokeStyle = C.boss; ctx.lineWidth = 1; ctx.stroke(); ctx.setLineDash([]);
    var above = s.by >= s.py;  // the upper fighter's name goes above it, the other's below
    this.fighter(X(s.bx), Y(s.by), s.byaw, Math.max(7, 1.0 * scale), C.boss, "Iudex: " + s.banim, above);
    this.fighter(X(s.px), Y(s.py), s.pyaw, Math.max(5, 0.4 * scale), C.agent, "Agent: " + s.panim, !above);
    ctx.restore();
    ctx.strokeStyle = C.muted; ctx.lineWidth = 2;  // the scale: 2 m
    ctx.beginPath(); ctx.moveTo(W - 12 - 2 * scale, H - 16); ctx.lineTo(W - 12, H - 16); ctx.stroke();
    ctx.fillStyle = C.muted; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "right";
    ctx.fillText("2 m", W - 12, H - 20);
    this.bar(12, 20, W / 2 - 24, "Agent HP", s.php, C.ok);
    this.bar(12, 42, W / 2 - 24, "Stamina", s.psp, C.warn);
    this.bar(W / 2 + 12, 20, W / 2 - 24, "Iudex HP (phase " + s.phase + ")", s.bhp, C.boss);
    ctx.fillStyle = C.muted; ctx.font = "13px system-ui, sans-serif"; ctx.textAlign = "left";
    ctx.fillText("Step " + (i + 1) + "/" + this.n + " · action: " + s.action, 12, H - 12);
    if (end) this.banner(outcomeWord(this.data) === "won" ? "WON" : "LOST", outcomeWord(this.data) === "won" ? C.ok : C.boss);
  };

  /* A still camera for the whole fight: the box every position of both fighters fits in, plus a margin. */
  Viewer.prototype.view = function () {
    if (this._view && this._view.data === this.data) return this._view;
    var f = this.f, xs = f.player_x.concat(f.boss_x), ys = f.player_y.concat(f.boss_y);
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    this._view = { data: this.data, x: (x0 + x1) / 2, y: (y0 + y1) / 2, half: Math.max(6, Math.max(x1 - x0, y1 - y0) / 2 + 3) };
    return this._view;
  };

  Viewer.prototype.fighter = function (x, y, yaw, r, fill, label, labelAbove) {
    var ctx = this.ctx;
    // The game's forward is (-sin yaw, -cos yaw) in its x, y; the canvas's y points down.
    var fx = -Math.sin(yaw), fy = Math.cos(yaw);
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fillStyle = fill; ctx.fill();
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + fx * r * 2.2, y + fy * r * 2.2);
    ctx.strokeStyle = C.text; ctx.lineWidth = 2; ctx.stroke();
    ctx.fillStyle = C.text; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(label, x, labelAbove ? y - r - 8 : y + r + 16);
  };

  Viewer.prototype.banner = function (word, fill) {
    var ctx = this.ctx, W = this.canvas.width, H = this.canvas.height;
    var y = 130;  // above the fighters, who are near the middle
    ctx.fillStyle = "rgba(0, 0, 0, 0.55)"; ctx.fillRect(0, y - 36, W, 72);
    ctx.fillStyle = fill; ctx.font = "bold 40px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(word, W / 2, y + 14);
  };

  Viewer.prototype.drawSteps = function (i, end) {
    var ctx = this.ctx, W = this.canvas.width, H = this.canvas.height, n = this.n, f = this.f;
    ctx.fillStyle = C.bg; ctx.fillRect(0, 0, W, H);
    var left = 40, right = W - 12, x = function (k) { return left + (right - left) * (n > 1 ? k / (n - 1) : 0); };
    var panel = function (top, height, values, low, high, stroke, label) {
      ctx.strokeStyle = C.line; ctx.strokeRect(left, top, right - left, height);
      ctx.beginPath();
      values.forEach(function (v, k) {
        var y = top + height - (high > low ? (v - low) / (high - low) : 0.5) * height;
        k ? ctx.lineTo(x(k), y) : ctx.moveTo(x(k), y);
      });
      ctx.strokeStyle = stroke; ctx.lineWidth = 1.5; ctx.stroke();
      ctx.fillStyle = C.muted; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "left";
      ctx.fillText(label, left, top - 4);
    };
    var actions = f.action, aMax = Math.max.apply(null, actions.concat([1]));
    panel(30, (H - 110) / 2, f.reward, -this.rewardMax, this.rewardMax, C.accent, "Reward per step");
    panel(60 + (H - 110) / 2, (H - 110) / 2, actions, 0, aMax, C.agent, "Action");
    ctx.strokeStyle = C.text; ctx.beginPath(); ctx.moveTo(x(i), 24); ctx.lineTo(x(i), H - 40); ctx.stroke();
    ctx.fillStyle = C.text; ctx.textAlign = "left"; ctx.font = "13px system-ui, sans-serif";
    ctx.fillText("Step " + (i + 1) + "/" + n + " · return so far " + fixed(this.cumulative[i], 2) +
      " · episode return " + fixed(this.data.episode_return, 2) + " in " + n + " steps", left, H - 14);
    if (end && outcomeWord(this.data)) this.banner(outcomeWord(this.data).toUpperCase(), C.ok);
  };

  function summaryText(r) {
    var word = outcomeWord(r);
    return "Checkpoint v" + r.model_version + " · " + (word ? word + " · " : "") + "return " + fixed(r.episode_return, 2) +
      " · " + r.length + " steps";
  }

  /* The campaign page: the newest replay, new ones as they arrive, and the first win. */
  function setUpLive(root) {
    var viewer = new Viewer(root), section = root.closest("section") || document;
    var summary = section.querySelector("[data-replay-summary]");
    var shownId = null;
    function showReplay(r) {
      if (r.id === shownId) return;
      getJSON(r.url).then(function (detail) {
        shownId = detail.id; viewer.load(detail);
        if (summary) summary.textContent = "Newest: " + summaryText(detail);
      });
    }
    function showFirstWin(r) {
      var box = section.querySelector("[data-first-win]");
      if (!box || !r) return;
      box.hidden = false;
      section.querySelector("[data-first-win-text]").textContent = "Iudex was first beaten by checkpoint v" +
        r.model_version + " on " + new Date(r.created).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" }) +
        " (return " + fixed(r.episode_return, 2) + ", " + r.length + " steps).";
      var model = section.querySelector("[data-first-win-model]");
      model.href = r.model_url; model.textContent = "Champion model v" + r.model_version;
      section.querySelector("[data-first-win-watch]").onclick = function () { shownId = null; showReplay(r); };
    }
    list(root.dataset.list).then(function (data) {
      if (data.replays.length) showReplay(data.replays[0]);
      showFirstWin(data.first_win);
    }).catch(function () { /* the empty message stays */ });
    document.addEventListener("soulsai:live", function (event) {
      var message = event.detail;
      if (!message || message.type !== "replay") return;
      if (message.replay.first_win) showFirstWin(message.replay);
      if (!viewer.playing) showReplay(message.replay);  // a fight being watched is not cut short
      else viewer.pending = message.replay;
    });
    // The newest replay that arrived while one played comes on when it ends or is paused.
    new MutationObserver(function () {
      if (!viewer.playing && viewer.pending) { var next = viewer.pending; viewer.pending = null; showReplay(next); }
    }).observe(root, { attributes: true, attributeFilter: ["data-state"] });
  }

  /* The history page: one row per checkpoint, shown when it has a replay, loaded when opened. */
  function setUpCheckpoint(root) {
    var version = Number(root.dataset.version), viewer = null;
    list(root.dataset.list).then(function (data) {
      var replay = data.replays.filter(function (r) { return r.model_version === version; })
        .sort(function (a, b) { return a.id - b.id; })[0];
      if (!replay) return;
      var row = root.closest("[data-replay-row]");
      if (row) row.hidden = false;
      root.querySelector("[data-replay-summary]").textContent = "Watch v" + version + "'s evaluation fight: " + summaryText(replay);
      root.addEventListener("toggle", function () {
        if (!root.open || viewer) return;
        viewer = new Viewer(root);
        getJSON(replay.url).then(function (detail) { viewer.load(detail); });
      });
    }).catch(function () {});
  }

  document.querySelectorAll("[data-replay]").forEach(function (root) {
    if (root.dataset.live) setUpLive(root); else setUpCheckpoint(root);
  });
})();
