/* Attention work per decode step, without and with a KV cache. At step t the context holds t
   tokens: without a cache the whole prefix is recomputed, 1 + 2 + ... + t = t(t+1)/2 query-key
   dot products (per head and layer); with the cache only the newest query, t dot products.
   The grids draw one cell per dot product. data: {n, t, max_n}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.attention_ops) return;
  LMC.explorers.attention_ops = function (root, data) {
    var s = { n: data.n, t: data.t };
    var gridNo = LMC.s("svg", { class: "lmc-grid-no-cache" }), gridKv = LMC.s("svg", { class: "lmc-grid-cache" });
    var bars = LMC.s("svg", { class: "lmc-steps" });
    var r = {}; ["step_no_cache", "step_cache", "total_no_cache", "total_cache", "ratio"].forEach(function (k) { r[k] = LMC.readout(k); });
    var tSlider = LMC.slider("decode step t", { min: 1, max: s.n, step: 1, value: s.t, name: "t" }, function (v) { s.t = v; draw(); });
    var nSlider = LMC.slider("tokens generated n", { min: 1, max: data.max_n, step: 1, value: s.n, name: "n" }, function (v) {
      s.n = v; tSlider.input.max = v; if (s.t > v) { s.t = v; tSlider.input.value = v; } tSlider.refresh(); draw();
    });
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [nSlider, tSlider]));
    root.appendChild(LMC.h("p", {}, ["at step t: no cache ", r.step_no_cache, " dot products, KV cache ", r.step_cache]));
    root.appendChild(LMC.h("div", {}, [gridNo, gridKv]));
    root.appendChild(LMC.h("p", {}, ["after n steps: no cache ", r.total_no_cache, ", KV cache ", r.total_cache, " (", r.ratio, "\u00d7 fewer)"]));
    root.appendChild(bars);
    function grid(svg, t, cached, title) {  // rows = queries computed at this step, columns = keys
      var cell = Math.max(3, Math.min(18, Math.floor(220 / t))), size = cell * t + 30;
      svg.textContent = "";
      var w = Math.max(size + 10, 250);  // room for the title even when t is small
      LMC.set(svg, { viewBox: "0 0 " + w + " " + (size + 10), width: w, height: size + 10, role: "img" });
      svg.appendChild(LMC.s("title", {}, title));
      svg.appendChild(LMC.s("text", { x: 4, y: 14, "font-size": 12 }, title));
      for (var i = 0; i < t; i++) for (var j = 0; j <= i; j++) {
        var computed = !cached || i === t - 1;
        svg.appendChild(LMC.s("rect", { class: computed ? "lmc-op" : "lmc-reused", x: 4 + j * cell, y: 24 + i * cell,
                                        width: cell - 1, height: cell - 1, fill: computed ? (cached ? "#1f77b4" : "#d62728") : "#e6e6e6" }));
      }
    }
    function draw() {
      var t = s.t, n = s.n;
      r.step_no_cache.textContent = LMC.int(t * (t + 1) / 2);
      r.step_cache.textContent = LMC.int(t);
      var totalNo = n * (n + 1) * (n + 2) / 6, totalKv = n * (n + 1) / 2;
      r.total_no_cache.textContent = LMC.int(totalNo);
      r.total_cache.textContent = LMC.int(totalKv);
      r.ratio.textContent = (totalNo / totalKv).toFixed(1);
      grid(gridNo, t, false, "no cache: recompute all t rows");
      grid(gridKv, t, true, "KV cache: newest row only (grey: reused)");
      var steps = []; for (var k = 1; k <= n; k++) steps.push(k);
      LMC.bars(bars, steps.map(function (k) {
        return { label: k, value: k * (k + 1) / 2, color: k === t ? "#d62728" : "#f4a6a6", selected: k === t, title: "step " + k + " without cache" };
      }), { width: 700, height: 160, valueLabels: false, format: LMC.int, caption: "dot products per step without a cache: t(t+1)/2 (dark: step t)" });
    }
    draw();
  };
})();
