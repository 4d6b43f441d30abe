/* KV-cache memory = 2 (keys and values) x layers x KV heads x head dim x context x batch x bytes.
   A preset fills the shape of a public model; the chart compares the current shape with the same
   model using one KV head (MQA) at every context length. data: {presets: {name: [L, h_kv, d]},
   dtypes: {name: bytes}, contexts, head_dims, preset, context, dtype, batch}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.kv_memory) return;
  LMC.explorers.kv_memory = function (root, data) {
    var p = data.presets[data.preset];
    var s = { L: p[0], h: p[1], d: p[2], n: data.context, batch: data.batch, b: data.dtypes[data.dtype] };
    var total = LMC.readout("bytes"), human = LMC.readout("human"), formula = LMC.readout("formula"), perTok = LMC.readout("per_token");
    var chart = LMC.s("svg", { class: "lmc-memory" });
    function number(label, key, min, max) {
      var id = LMC.uid("num"), input = LMC.h("input", { type: "number", id: id, min: min, max: max, step: 1, value: s[key], "data-control": key });
      input.addEventListener("input", LMC.guard(function () { var v = Math.round(Number(input.value)); if (v >= min && v <= max) { s[key] = v; draw(); } }));
      var wrap = LMC.h("span", { class: "lmc-control" }, [LMC.h("label", { for: id, text: label }), input]);
      wrap.input = input;
      return wrap;
    }
    var L = number("layers L", "L", 1, 256), H = number("KV heads", "h", 1, 256), B = number("batch", "batch", 1, 1024);
    var D = LMC.select("head dim d", data.head_dims.map(function (v) { return [v, String(v)]; }), s.d, function (v) { s.d = Number(v); draw(); }, "d");
    var preset = LMC.select("preset", Object.keys(data.presets).map(function (k) { return [k, k]; }), data.preset, function (k) {
      var q = data.presets[k]; s.L = q[0]; s.h = q[1]; s.d = q[2];
      L.input.value = q[0]; H.input.value = q[1]; D.input.value = q[2]; draw();
    }, "preset");
    var ctx = LMC.select("context n", data.contexts.map(function (v) { return [v, LMC.int(v)]; }), s.n, function (v) { s.n = Number(v); draw(); }, "context");
    var dt = LMC.select("dtype", Object.keys(data.dtypes).map(function (k) { return [k, k + " (" + data.dtypes[k] + " B)"]; }), data.dtype,
                        function (k) { s.b = data.dtypes[k]; draw(); }, "dtype");
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [preset]));
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [L, H, D, ctx, B, dt]));
    root.appendChild(LMC.h("p", {}, ["KV cache: ", LMC.h("b", {}, [human]), " (", total, " bytes) = ", formula]));
    root.appendChild(LMC.h("p", {}, ["per token: ", perTok]));
    root.appendChild(chart);
    function bytes(h, n) { return 2 * s.L * h * s.d * n * s.batch * s.b; }
    function draw() {
      var v = bytes(s.h, s.n);
      total.textContent = String(v);
      human.textContent = LMC.formatBytes(v);
      formula.textContent = "2 \u00d7 " + s.L + " \u00d7 " + s.h + " \u00d7 " + s.d + " \u00d7 " + s.n + " \u00d7 " + s.batch + " \u00d7 " + s.b + " bytes";
      perTok.textContent = LMC.formatBytes(2 * s.L * s.h * s.d * s.b);
      // grouped bars per context: current shape vs one KV head, on a log scale
      var W = 700, Hh = 220, pad = 40, cs = data.contexts, bw = (W - pad) / cs.length;
      var lo = Math.log10(bytes(1, cs[0])) - 0.5, hi = Math.log10(bytes(Math.max(s.h, 1), cs[cs.length - 1])) + 0.3;
      chart.textContent = "";
      LMC.set(chart, { viewBox: "0 0 " + W + " " + Hh, width: W, height: Hh, role: "img" });
      chart.appendChild(LMC.s("title", {}, "KV-cache memory against context length (log scale)"));
      cs.forEach(function (n, i) {
        [[s.h, "#1f77b4", "current"], [1, "#1b9e77", "mqa"]].forEach(function (c, j) {
          var val = bytes(c[0], n), y = 20 + (Hh - 60) * (1 - (Math.log10(val) - lo) / (hi - lo));
          var r = LMC.s("rect", { class: "lmc-bar", x: pad + i * bw + j * bw * 0.42 + 2, y: y, width: bw * 0.4, height: Hh - 40 - y,
                                  fill: c[1], stroke: n === s.n ? "#000" : "none", "stroke-width": 2, "data-series": c[2], "data-context": n, "data-value": val });
          r.appendChild(LMC.s("title", {}, c[2] + ", n = " + n + ": " + LMC.formatBytes(val)));
          chart.appendChild(r);
        });
        chart.appendChild(LMC.s("text", { x: pad + i * bw + bw * 0.42, y: Hh - 24, "text-anchor": "middle", "font-size": 10 }, n >= 1024 ? (n / 1024) + "k" : String(n)));
      });
      chart.appendChild(LMC.s("text", { x: W / 2, y: Hh - 6, "text-anchor": "middle", "font-size": 11 },
                              "context n (blue: current shape, green: one KV head; outlined: selected n; log scale)"));
    }
    draw();
  };
})();
