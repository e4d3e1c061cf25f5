// complexface AU editor: sliders -> live preview (coalesced: the newest slider state always wins), presets,
// text -> recipe, measurement, export, MagicFace. Talks only to the app's own JSON API (see server.py).
(function () {
  "use strict";
  var $ = function (sel) { return document.querySelector(sel); };
  var $$ = function (sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); };
  var info = null, lang = "en", face = null, photoInfo = null, preset = null;
  var history = [], inflight = false, pending = false, measureTimer = null, renderTimer = null;
  var main = $("#app"), after = $("#after"), before = $("#before");

  function t(key) { return (info && info.texts[lang][key]) || key; }
  function emotion(word) {
    if (lang !== "ja") { return word; }
    return word.split("+").map(function (w) { return info.emotions[w] || w; }).join("＋");
  }
  function say(text) { var m = $("#message"); m.textContent = text || ""; m.hidden = !text; }

  function api(path, body) {
    var options = body === undefined ? {} : body instanceof FormData ? { method: "POST", body: body }
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    options.credentials = "same-origin";
    return fetch("api/" + path, options).then(function (r) {
      if (r.ok) { return r; }
      return r.json().catch(function () { return { error: r.status + " " + r.statusText }; })
        .then(function (e) { var err = new Error(e.error || String(r.status)); err.status = r.status; throw err; });
    });
  }

  // -- sliders: one per AU (both sides), and per side for the bilateral AUs (added to the both-sides value)
  function slider(key, title, sub) {
    var row = document.createElement("div");
    row.className = "au" + (sub ? " side" : "");
    var label = document.createElement("label");
    label.htmlFor = "s-" + key;
    var name = document.createElement("b");
    name.textContent = key;
    var plain = document.createElement("span");
    plain.textContent = title;
    label.appendChild(name); label.appendChild(plain);
    var input = document.createElement("input");
    input.type = "range"; input.min = "-5"; input.max = "5"; input.step = "0.5"; input.value = "0";
    input.name = key; input.id = "s-" + key;
    var out = document.createElement("output");
    out.htmlFor = input.id; out.textContent = "0";
    input.addEventListener("input", function () { out.textContent = input.value; changed(false); });
    input.addEventListener("change", function () { remember(); });
    row.appendChild(label); row.appendChild(input); row.appendChild(out);
    return row;
  }

  function buildSliders() {
    var box = $("#sliders");
    box.textContent = "";
    info.aus.forEach(function (au) {
      var group = document.createElement("div");
      group.className = "au-group";
      group.appendChild(slider(au.key, au[lang], false));
      var facs = document.createElement("small");
      facs.className = "facs"; facs.textContent = au.facs;
      group.firstChild.querySelector("label").appendChild(facs);
      if (au.sides) {
        var more = document.createElement("details");
        var summary = document.createElement("summary");
        summary.textContent = t("sides");
        more.appendChild(summary);
        more.appendChild(slider(au.key + "L", t("left"), true));
        more.appendChild(slider(au.key + "R", t("right"), true));
        group.appendChild(more);
      }
      box.appendChild(group);
    });
  }

  function values() {
    var v = {};
    $$("#sliders input[type=range]").forEach(function (s) { v[s.name] = parseFloat(s.value) || 0; });
    return v;
  }
  // The edit the sliders ask for: an AU with a per-side value goes per side (both-sides value + side value).
  function edit() {
    var v = values(), aus = {};
    info.aus.forEach(function (au) {
      var k = au.key, both = v[k] || 0;
      if (au.sides && ((v[k + "L"] || 0) !== 0 || (v[k + "R"] || 0) !== 0)) {
        if (both + v[k + "L"] !== 0) { aus[k + "L"] = both + v[k + "L"]; }
        if (both + v[k + "R"] !== 0) { aus[k + "R"] = both + v[k + "R"]; }
      } else if (both !== 0) { aus[k] = both; }
    });
    return aus;
  }
  function label(aus) {
    var keys = Object.keys(aus);
    return keys.length ? keys.map(function (k) { return k + "=" + aus[k]; }).join(",") : "neutral";
  }
  function setValues(v, keep) {
    $$("#sliders input[type=range]").forEach(function (s) {
      s.value = String(v[s.name] || 0);
      s.nextSibling.textContent = s.value;
      if (/[LR]$/.test(s.name) && (v[s.name] || 0) !== 0) { s.closest("details").open = true; }
    });
    if (!keep) { remember(); }
    changed(true);
  }
  // Recipe AUs -> slider values (one-sided AUs go to their side slider).
  function fromAus(aus) {
    var v = {};
    Object.keys(aus).forEach(function (k) { v[k.toUpperCase()] = Number(aus[k]); });
    return v;
  }
  function remember() {
    var v = values(), last = history[history.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(v)) { history.push(v); }
    if (history.length > 100) { history.shift(); }
  }

  function changed(now) {
    var aus = edit();
    main.setAttribute("data-edit", label(aus));
    $("#beyond").hidden = !Object.keys(aus).some(function (k) { return Math.abs(aus[k]) > info.safe; });
    preview();
    clearTimeout(measureTimer);
    measureTimer = setTimeout(measure, now ? 50 : 350);
  }

  // -- live preview: at most one request in flight; while it runs only the newest state is kept, and sent next
  function preview() {
    if (!face) { return; }
    if (inflight) { pending = true; return; }
    inflight = true; pending = false;
    var aus = edit(), sent = label(aus);
    api("edit", { face: face.id, aus: aus }).then(function (r) { return r.blob(); }).then(function (blob) {
      var old = after.src;
      return new Promise(function (done) {
        after.onload = function () {
          after.setAttribute("data-edit", sent);
          if (old && old.indexOf("blob:") === 0) { URL.revokeObjectURL(old); }
          done();
        };
        after.onerror = done;
        after.src = URL.createObjectURL(blob);
      });
    }).catch(function (err) { say(err.message); }).then(function () {
      inflight = false;
      if (pending) { preview(); }
    });
  }

  function row(cells, cls) {
    var tr = document.createElement("tr");
    if (cls) { tr.className = cls; }
    cells.forEach(function (c, i) {
      var td = document.createElement(i ? "td" : "th");
      td.textContent = c;
      if (cells.length === 2 && i === 1) { td.colSpan = 2; }
      tr.appendChild(td);
    });
    return tr;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 2 : digits); }
  function measure() {
    if (!face) { return; }
    var aus = edit(), sent = label(aus);
    api("measure", { face: face.id, aus: aus }).then(function (r) { return r.json(); }).then(function (m) {
      if (label(edit()) !== sent) { return; }  // a newer state is on the way
      var body = $("#measure tbody");
      body.textContent = "";
      body.appendChild(row(["AU", t("requested"), t("measured")], "head"));
      var keys = Object.keys(m.requested);
      keys.forEach(function (k) { body.appendChild(row([k, fmt(m.requested[k], 1), fmt(m.measured[k])])); });
      var leaking = (m.leakage_aus || []).filter(function (k) { return m.measured[k]; })
        .map(function (k) { return k + " " + fmt(m.measured[k]); }).join(", ");
      body.appendChild(row([t("leakage"), fmt(m.leakage) + (leaking ? " (" + leaking + ")" : "")]));
      body.appendChild(row([t("identity"), fmt(m.identity_distance, 3)]));
      body.appendChild(row([t("nose"), m.nose_drift === null ? "–" : (100 * m.nose_drift).toFixed(1).replace(/^-0\.0$/, "0.0") + " %"]));
      var warn = $("#measure-warn");
      warn.textContent = (m.warnings || []).join(" ") + (m.status !== "ok" ? " " + m.reason : "");
      warn.hidden = !warn.textContent.trim();
      main.setAttribute("data-measured", sent);
    }).catch(function (err) { say(err.message); });
  }

  // -- faces: bundled or uploaded; several faces -> pick one on the photo
  function useFace(f) {
    face = f;
    say("");
    $("#picker").hidden = true;
    before.src = "api/crop/" + encodeURIComponent(f.id);
    after.removeAttribute("data-edit");
    main.setAttribute("data-face", f.id);
    main.setAttribute("data-state", "ready");
    changed(true);
  }
  function gotFaces(p) {
    photoInfo = p;
    if (p.faces.length === 1) { useFace(p.faces[0]); return; }
    var boxes = $("#boxes");
    boxes.textContent = "";
    p.faces.forEach(function (f, i) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "face-pick"; b.setAttribute("data-index", String(i));
      b.textContent = String(i + 1);
      b.style.left = (100 * f.box[0] / p.width) + "%";
      b.style.top = (100 * f.box[1] / p.height) + "%";
      b.style.width = (100 * (f.box[2] - f.box[0]) / p.width) + "%";
      b.style.height = (100 * (f.box[3] - f.box[1]) / p.height) + "%";
      b.addEventListener("click", function () { useFace(f); });
      boxes.appendChild(b);
    });
    $("#photo").src = "api/photo/" + encodeURIComponent(p.photo);
    $("#picker").hidden = false;
    main.setAttribute("data-state", "pick");
  }
  function loadDemo(name) {
    api("faces", { demo: name }).then(function (r) { return r.json(); }).then(gotFaces).catch(function (e) { say(e.message); });
  }
  function upload(file) {
    var form = new FormData();
    form.append("photo", file, file.name);
    main.setAttribute("data-state", "uploading");
    api("faces", form).then(function (r) { return r.json(); }).then(gotFaces).catch(function (e) {
      main.setAttribute("data-state", face ? "ready" : "error");
      say(e.message);
    });
  }

  // -- presets and text
  function showRecipe(r, extra) {
    preset = r.id;
    $("select[name=preset]").value = r.id;
    $("#preset-info").textContent = (lang === "ja" ? r.name_ja : r.name_en) + " — " + t("felt") + ": " + emotion(r.felt) +
      ", " + t("displayed") + ": " + emotion(r.displayed) + (extra || "") + ". " + r.citation;
    var v = fromAus(r.aus);
    setValues(v);
  }
  function recipeById(id) { return info.recipes.filter(function (r) { return r.id === id; })[0]; }

  // The text box's top three: one button each (name, felt/displayed, confidence); a click loads the preset.
  function showChoices(top) {
    var box = $("#prompt-result");
    box.textContent = "";
    var head = document.createElement("p");
    head.className = "hint"; head.textContent = t("choices");
    box.appendChild(head);
    top.forEach(function (x) {
      var r = recipeById(x.id);
      if (!r) { return; }
      var b = document.createElement("button");
      b.type = "button"; b.className = "choice"; b.setAttribute("data-choice", x.id);
      var name = document.createElement("strong");
      name.textContent = lang === "ja" ? r.name_ja : r.name_en;
      var detail = document.createElement("span");
      detail.textContent = t("felt") + ": " + emotion(r.felt) + " · " + t("displayed") + ": " + emotion(r.displayed) +
        " · " + t("confidence") + " " + Math.round(100 * x.confidence) + "%";
      b.appendChild(name); b.appendChild(detail);
      b.addEventListener("click", function () { pickChoice(x.id); });
      box.appendChild(b);
    });
  }
  function pickChoice(id) {
    $$("#prompt-result button.choice").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-choice") === id));
    });
    main.setAttribute("data-recipe", id);
    var r = recipeById(id);
    if (r) { showRecipe(r); }
  }

  function download(blob, name) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function texts() {
    document.documentElement.lang = lang;
    document.title = t("title");
    $$("[data-t]").forEach(function (el) { el.textContent = t(el.getAttribute("data-t")); });
    $("#language").textContent = t("language");
    $("#prompt").placeholder = t("prompt_placeholder");
    var select = $("select[name=preset]");
    select.textContent = "";
    var none = document.createElement("option");
    none.value = ""; none.textContent = t("preset_none");
    select.appendChild(none);
    info.recipes.forEach(function (r) {
      var o = document.createElement("option");
      o.value = r.id;
      o.textContent = (lang === "ja" ? r.name_ja : r.name_en) + " (" + emotion(r.felt) + " → " + emotion(r.displayed) + ")";
      select.appendChild(o);
    });
    select.value = preset || "";
    var v = values();
    buildSliders();
    setValues(v, true);
    magicLabel();
  }

  var magic = null;
  function magicLabel() {
    var b = $("#render");
    b.textContent = magic === null ? t("magicface_checking") : magic.ready ? t("magicface") : t("magicface_missing");
    b.disabled = magic === null;
  }

  function start() {
    var params = new URLSearchParams(location.search);
    lang = params.get("lang") === "ja" || (!params.get("lang") && /^ja/.test(navigator.language || "")) ? "ja" : "en";
    api("info").then(function (r) { return r.json(); }).then(function (data) {
      info = data;
      var demo = $("select[name=demo]");
      info.demo.forEach(function (name) {
        var o = document.createElement("option"); o.value = name; o.textContent = name; demo.appendChild(o);
      });
      texts();
      remember();
      demo.addEventListener("change", function () { loadDemo(demo.value); });
      loadDemo(params.get("face") || info.demo[0]);
      if (params.get("face")) { demo.value = params.get("face"); }
      api("magicface").then(function (r) { return r.json(); }).then(function (m) { magic = m; magicLabel(); });
    }).catch(function (e) { say(e.message); });

    $("#language").addEventListener("click", function () { lang = lang === "ja" ? "en" : "ja"; texts(); });
    $("input[name=photo]").addEventListener("change", function (e) { if (e.target.files[0]) { upload(e.target.files[0]); } e.target.value = ""; });
    $("input[name=split]").addEventListener("input", function (e) {
      var x = Number(e.target.value);
      after.style.clipPath = "inset(0 0 0 " + x + "%)";
      $("#divider").style.left = x + "%";
    });
    $("#reset").addEventListener("click", function () { preset = null; $("select[name=preset]").value = ""; setValues({}); });
    $("#undo").addEventListener("click", function () {
      if (history.length > 1) { history.pop(); }
      setValues(history[history.length - 1] || {}, true);
    });
    $("select[name=preset]").addEventListener("change", function (e) {
      var r = recipeById(e.target.value);
      if (r) { showRecipe(r); }
    });
    $("#prompt-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var text = $("#prompt").value;
      api("recipe_for", { text: text }).then(function (r) { return r.json(); }).then(function (r) {
        showChoices(r.top);
        pickChoice(r.id);
      }).catch(function (err) { say(err.message); });
    });
    $$("button[data-export]").forEach(function (b) {
      b.addEventListener("click", function () {
        if (!face) { return; }
        var what = b.getAttribute("data-export");
        api("export", { face: face.id, aus: edit(), what: what, preset: preset }).then(function (r) {
          var name = (r.headers.get("content-disposition") || "").split("filename=")[1] || what;
          return r.blob().then(function (blob) { download(blob, name.replace(/"/g, "")); });
        }).catch(function (err) { say(err.message); });
      });
    });
    $("input[name=recipe]").addEventListener("change", function (e) {
      var file = e.target.files[0];
      if (!file) { return; }
      file.text().then(function (text) {
        var data = JSON.parse(text), aus = data.aus || data;
        if (typeof aus !== "object") { throw new Error("not a recipe"); }
        Object.keys(aus).forEach(function (k) {
          if (!document.querySelector("input[name=" + k.toUpperCase() + "]") || !isFinite(Number(aus[k]))) { throw new Error("unknown AU " + k); }
        });
        preset = data.preset || null;
        $("select[name=preset]").value = preset || "";
        setValues(fromAus(aus));
        main.setAttribute("data-loaded", label(edit()));
      }).catch(function (err) { say("recipe JSON: " + err.message); });
      e.target.value = "";
    });
    $("#render").addEventListener("click", function () {
      if (!face || !magic) { return; }
      if (!magic.ready) { var pre = $("#render-message"); pre.textContent = magic.message; pre.hidden = !pre.hidden; return; }
      var started = performance.now(), status = $("#render-status");
      clearInterval(renderTimer);
      renderTimer = setInterval(function () { status.textContent = t("rendering") + " " + Math.round((performance.now() - started) / 1000) + " s"; }, 250);
      $("#render").disabled = true;
      api("render", { face: face.id, aus: edit() }).then(function (r) { return r.blob(); }).then(function (blob) {
        $("#magic-img").src = URL.createObjectURL(blob);
        $("#magic").hidden = false;
        status.textContent = "";
      }).catch(function (err) { status.textContent = err.message; }).then(function () {
        clearInterval(renderTimer); $("#render").disabled = false;
      });
    });
  }
  start();
})();
