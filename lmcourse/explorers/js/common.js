/* Shared helpers of the lmcourse explorers: elements, labelled controls, SVG bar charts,
   softmax and number formatting. Loaded once per page (the guard makes a second copy a no-op).
   Every explorer is a function (root, data) registered in LMC.explorers[name]. */
(function () {
  if (window.LMC) return;
  var SVGNS = "http://www.w3.org/2000/svg";
  var ids = 0;
  var LMC = { explorers: {}, errors: [] };

  /* Run fn, recording any exception in LMC.errors (what the browser test checks), then rethrow. */
  LMC.guard = function (fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { LMC.errors.push(String(e && e.stack || e)); throw e; }
    };
  };

  /* Create an HTML element: h("div", {class: "x"}, [child, "text"]). */
  LMC.h = function (tag, attrs, children) {
    var e = document.createElement(tag);
    LMC.set(e, attrs);
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  };
  /* Create an SVG element. */
  LMC.s = function (tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    LMC.set(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  LMC.set = function (e, attrs) {
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    return e;
  };
  LMC.uid = function (prefix) { ids += 1; return (prefix || "lmc") + "-" + ids + "-" + Math.floor(Math.random() * 1e6); };

  /* A labelled range slider; onInput(value) runs on every move (mouse or arrow keys). */
  LMC.slider = function (label, opts, onInput) {
    var id = LMC.uid("slider");
    var input = LMC.h("input", { type: "range", id: id, min: opts.min, max: opts.max, step: opts.step,
                                 value: opts.value, "data-control": opts.name || label });
    var out = LMC.h("output", { for: id, class: "lmc-value" });
    var fmt = opts.format || function (v) { return String(v); };
    function update() { var v = Number(input.value); out.textContent = fmt(v); onInput(v); }
    input.addEventListener("input", LMC.guard(update));
    var wrap = LMC.h("span", { class: "lmc-control" }, [LMC.h("label", { for: id, text: label }), input, out]);
    wrap.input = input;
    wrap.refresh = function () { out.textContent = fmt(Number(input.value)); };
    wrap.refresh();
    return wrap;
  };
  /* A labelled <select>; options are [value, text] pairs. */
  LMC.select = function (label, options, value, onChange, name) {
    var id = LMC.uid("select");
    var sel = LMC.h("select", { id: id, "data-control": name || label });
    options.forEach(function (o) {
      var opt = LMC.h("option", { value: String(o[0]), text: o[1] });
      if (String(o[0]) === String(value)) opt.selected = true;
      sel.appendChild(opt);
    });
    sel.addEventListener("change", LMC.guard(function () { onChange(sel.value); }));
    var wrap = LMC.h("span", { class: "lmc-control" }, [LMC.h("label", { for: id, text: label }), sel]);
    wrap.input = sel;
    return wrap;
  };
  LMC.button = function (text, onClick, name) {
    var b = LMC.h("button", { type: "button", "data-control": name || text, text: text });
    b.addEventListener("click", LMC.guard(onClick));
    return b;
  };
  /* A live text readout (screen readers announce its changes). */
  LMC.readout = function (key) { return LMC.h("output", { class: "lmc-readout", "data-key": key, "aria-live": "polite" }); };

  /* softmax(z / temperature), computed stably. */
  LMC.softmax = function (z, temperature) {
    var t = temperature === undefined ? 1 : temperature;
    var m = -Infinity, i, out = new Array(z.length), sum = 0;
    for (i = 0; i < z.length; i++) m = Math.max(m, z[i] / t);
    for (i = 0; i < z.length; i++) { out[i] = z[i] === -Infinity ? 0 : Math.exp(z[i] / t - m); sum += out[i]; }
    for (i = 0; i < z.length; i++) out[i] /= sum;
    return out;
  };
  /* Entropy in bits of a probability vector (0 log 0 = 0). */
  LMC.entropyBits = function (p) {
    var h = 0;
    p.forEach(function (q) { if (q > 0) h -= q * Math.log2(q); });
    return h;
  };
  /* Indices sorted by value, largest first. */
  LMC.argsortDesc = function (v) {
    return v.map(function (_, i) { return i; }).sort(function (a, b) { return v[b] - v[a] || a - b; });
  };
  /* Make whitespace tokens visible: " " -> "␣", "\n" -> "\\n". */
  LMC.tokenLabel = function (t) {
    if (t === " ") return "\u2423";
    if (t.trim() === "") return JSON.stringify(t).slice(1, -1) || "''";
    return t;
  };
  /* Decimal byte sizes, the rule of lmcourse.long_context.format_bytes. */
  LMC.formatBytes = function (n) {
    var units = [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]];
    for (var i = 0; i < units.length; i++) if (Math.abs(n) >= units[i][1]) return (n / units[i][1]).toFixed(2) + " " + units[i][0];
    return Math.floor(n) + " B";
  };
  LMC.int = function (n) { return Math.round(n).toLocaleString("en-US"); };

  /* Draw a bar chart into <svg> `svg`: bars = [{label, value, color, title}], ymax the top of the scale.
     Each bar is a <rect class="lmc-bar" data-label data-value>; heights are proportional to value/ymax. */
  LMC.bars = function (svg, bars, opts) {
    opts = opts || {};
    var W = opts.width || 420, H = opts.height || 200, padB = 34, padT = 18, padL = opts.padLeft || 8;
    var ymax = opts.ymax || Math.max.apply(null, bars.map(function (b) { return Math.abs(b.value); }).concat([1e-12]));
    var ymin = opts.ymin || 0;
    svg.textContent = "";
    LMC.set(svg, { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "data-ymax": ymax, "data-ymin": ymin });
    if (opts.title) svg.appendChild(LMC.s("title", {}, opts.title));
    var plotH = H - padB - padT, bw = (W - padL) / Math.max(bars.length, 1);
    svg.setAttribute("data-plot-height", plotH);
    var y0 = padT + plotH * ymax / (ymax - ymin);  // the baseline (value 0)
    svg.appendChild(LMC.s("line", { x1: padL, x2: W, y1: y0, y2: y0, stroke: "#444", "stroke-width": 1 }));
    bars.forEach(function (b, i) {
      var hgt = plotH * Math.abs(b.value) / (ymax - ymin);
      var x = padL + i * bw + bw * 0.1, y = b.value >= 0 ? y0 - hgt : y0;
      var r = LMC.s("rect", { class: "lmc-bar", x: x.toFixed(2), y: y.toFixed(2), width: (bw * 0.8).toFixed(2), height: hgt.toFixed(3),
                              fill: b.color || "#1f77b4", "data-label": b.label, "data-value": b.value,
                              "data-index": i });
      if (b.selected) r.setAttribute("data-selected", "true");
      r.appendChild(LMC.s("title", {}, (b.title || b.label) + ": " + (opts.format || LMC.fmt3)(b.value)));
      svg.appendChild(r);
      if (opts.valueLabels !== false && bars.length <= 24 && Math.abs(b.value) >= 0.005)
        svg.appendChild(LMC.s("text", { x: x + bw * 0.4, y: b.value >= 0 ? y - 3 : y + hgt + 11, "text-anchor": "middle", "font-size": 10 },
                              (opts.format || LMC.fmt2)(b.value)));
      if (bars.length <= 40)
        svg.appendChild(LMC.s("text", { x: x + bw * 0.4, y: H - padB + 16, "text-anchor": "middle", "font-size": 12,
                                        "font-family": "monospace" }, LMC.tokenLabel(String(b.label))));
    });
    if (opts.caption) svg.appendChild(LMC.s("text", { x: W / 2, y: H - 4, "text-anchor": "middle", "font-size": 11, fill: "#333" }, opts.caption));
    return svg;
  };
  LMC.fmt2 = function (v) { return Number(v).toFixed(2); };
  LMC.fmt3 = function (v) { return Number(v).toFixed(3); };
  /* Colour of a weight in [0, 1]: white to dark blue (readable, monotone in lightness). */
  LMC.blue = function (w) {
    var a = Math.max(0, Math.min(1, w));
    return "rgb(" + Math.round(247 - 239 * a) + "," + Math.round(251 - 203 * a) + "," + Math.round(255 - 148 * a) + ")";
  };
  /* Shared look: readable colours, visible keyboard focus. */
  LMC.style = function () {
    if (document.getElementById("lmc-style")) return;
    var css = ".lmc-explorer{font-family:system-ui,sans-serif;font-size:14px;color:#111;background:#fff;border:1px solid #ccc;" +
      "border-radius:6px;padding:10px;margin:8px 0;max-width:900px}" +
      ".lmc-explorer .lmc-controls{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:center;margin-bottom:6px}" +
      ".lmc-explorer .lmc-control label{margin-right:6px;font-weight:600}" +
      ".lmc-explorer .lmc-value{display:inline-block;min-width:3.5em;margin-left:6px;font-family:monospace}" +
      ".lmc-explorer :focus-visible{outline:3px solid #d95f02;outline-offset:2px}" +
      ".lmc-explorer button{padding:2px 10px;margin-right:4px}" +
      ".lmc-explorer svg{display:inline-block;vertical-align:top;max-width:100%;height:auto}" +
      ".lmc-explorer pre{white-space:pre-wrap;margin:4px 0;font-size:13px;background:#f6f6f6;padding:6px}" +
      ".lmc-explorer .lmc-tok{display:inline-block;border:1px solid #999;border-radius:3px;margin:2px;padding:0 3px;font-family:monospace;background:#eef4fb}" +
      ".lmc-explorer .lmc-tok small{display:block;color:#555;font-size:10px;text-align:center}" +
      ".lmc-explorer .lmc-special{background:#333;color:#fff}.lmc-explorer .lmc-special small{color:#e6e6e6}" +
      ".lmc-explorer .lmc-hl{background:#ffd59e;font-weight:700}" +
      ".lmc-explorer .lmc-muted{color:#666}" +
      ".lmc-explorer .lmc-note{font-size:12px;margin:8px 0 0}";
    document.head.appendChild(LMC.h("style", { id: "lmc-style", text: css }));
  };
  LMC.NOTE = "Runs in your browser from numbers stored in the page: no Python kernel, no network. " +
    "Mouse or keyboard (arrow keys, Home, End).";
  /* Start the explorer whose container has id `id`; its JSON sits in <script id="<id>-data">. */
  LMC.boot = function (id) {
    var root = document.getElementById(id);
    if (!root || root.getAttribute("data-ready")) return;
    var data = JSON.parse(document.getElementById(id + "-data").textContent);
    LMC.style();
    var fallback = root.querySelector(".lmc-fallback");
    if (fallback) fallback.remove();
    LMC.guard(LMC.explorers[root.getAttribute("data-explorer")])(root, data);
    /* the one "how this works" line every explorer shows, so no chapter repeats it */
    root.appendChild(LMC.h("p", { "class": "lmc-note lmc-muted", text: LMC.NOTE }));
    root.setAttribute("data-ready", "true");
  };
  window.LMC = LMC;
})();
