/* Decoding filters on one next-token distribution: temperature, then top-k, top-p and min-p
   (the order of lmcourse.sampling.process_logits). Left: the model's own probabilities, removed
   tokens grey; right: the renormalised distribution actually sampled from. A button draws a
   token from it. data: {vocab, contexts: [{context, logits}], k, temperature, top_k, top_p, min_p}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.decoding) return;

  /* Boolean "kept" mask after the filters, on logits already divided by the temperature. */
  function keptMask(z, topK, topP, minP) {
    var V = z.length, keep = z.map(function () { return true; }), order = LMC.argsortDesc(z), i;
    if (topK > 0 && topK < V) {
      var kth = z[order[topK - 1]];  // ties with the k-th largest are kept
      for (i = 0; i < V; i++) if (z[i] < kth) keep[i] = false;
    }
    function probsOfKept() { return LMC.softmax(z.map(function (v, j) { return keep[j] ? v : -Infinity; })); }
    if (topP < 1) {  // remove the unlikely tail holding at most 1 - p of the mass
      var p = probsOfKept(), cum = 0, asc = order.slice().reverse();
      for (i = 0; i < V; i++) {
        cum += p[asc[i]];
        if (cum <= 1 - topP && i < V - 1) keep[asc[i]] = false;
      }
    }
    if (minP > 0) {
      var q = probsOfKept(), qmax = Math.max.apply(null, q);
      for (i = 0; i < V; i++) if (q[i] < minP * qmax && i !== order[0]) keep[i] = false;
    }
    return keep;
  }

  LMC.explorers.decoding = function (root, data) {
    var ctx = 0, s = { T: data.temperature, k: data.top_k, p: data.top_p, m: data.min_p }, seed = 1;
    var before = LMC.s("svg", { class: "lmc-before" }), after = LMC.s("svg", { class: "lmc-after" });
    var nKept = LMC.readout("n_kept"), keptList = LMC.readout("kept"), drawn = LMC.readout("drawn");
    var V = data.vocab.length;
    var controls = LMC.h("div", { class: "lmc-controls" });
    if (data.contexts.length > 1)
      controls.appendChild(LMC.select("context", data.contexts.map(function (c, i) { return [i, JSON.stringify(c.context)]; }), 0,
                                      function (v) { ctx = Number(v); draw(); }, "context"));
    controls.appendChild(LMC.slider("temperature", { min: 0.05, max: 2.5, step: 0.05, value: s.T, name: "temperature", format: LMC.fmt2 },
                                    function (v) { s.T = v; draw(); }));
    controls.appendChild(LMC.slider("top-k (0 = off)", { min: 0, max: V, step: 1, value: s.k, name: "top_k" }, function (v) { s.k = v; draw(); }));
    controls.appendChild(LMC.slider("top-p (1 = off)", { min: 0.05, max: 1, step: 0.01, value: s.p, name: "top_p", format: LMC.fmt2 },
                                    function (v) { s.p = v; draw(); }));
    controls.appendChild(LMC.slider("min-p (0 = off)", { min: 0, max: 1, step: 0.01, value: s.m, name: "min_p", format: LMC.fmt2 },
                                    function (v) { s.m = v; draw(); }));
    var drawButton = LMC.button("draw a token", function () { sample(); }, "draw");
    root.appendChild(controls);
    root.appendChild(LMC.h("div", {}, [before, after]));
    root.appendChild(LMC.h("p", {}, [nKept, " of " + V + " tokens kept: ", keptList]));
    root.appendChild(LMC.h("p", {}, [drawButton, " ", drawn]));
    var current = null;
    function draw() {
      var z = data.contexts[ctx].logits, model = LMC.softmax(z);
      var zt = z.map(function (v) { return v / s.T; });
      var keep = keptMask(zt, s.k, s.p, s.m);
      var q = LMC.softmax(zt.map(function (v, i) { return keep[i] ? v : -Infinity; }));
      current = q;
      var order = LMC.argsortDesc(z).slice(0, data.k);
      LMC.bars(before, order.map(function (i) {
        return { label: data.vocab[i], value: model[i], color: keep[i] ? "#1f77b4" : "#c8c8c8" };
      }), { ymax: 1, width: 420, caption: "the model's probabilities (grey: removed by the filters)" });
      LMC.bars(after, order.map(function (i) { return { label: data.vocab[i], value: q[i], color: keep[i] ? "#d95f02" : "#c8c8c8" }; }),
               { ymax: 1, width: 420, caption: "sampled from: \u03c4, filters, renormalised" });
      var kept = LMC.argsortDesc(q).filter(function (i) { return keep[i]; });
      nKept.textContent = String(kept.length);
      keptList.textContent = kept.slice(0, 8).map(function (i) { return JSON.stringify(data.vocab[i]) + " " + q[i].toFixed(2); }).join(", ") +
        (kept.length > 8 ? " + " + (kept.length - 8) + " more" : "");
    }
    function sample() {  // a small seeded generator (mulberry32), so draws repeat on reload
      seed = (seed + 0x6D2B79F5) | 0;
      var t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      var u = ((t ^ (t >>> 14)) >>> 0) / 4294967296, acc = 0, i;
      for (i = 0; i < current.length; i++) { acc += current[i]; if (u < acc) break; }
      i = Math.min(i, current.length - 1);
      drawn.textContent = "drew " + JSON.stringify(data.vocab[i]) + " (p = " + current[i].toFixed(3) + ")";
    }
    draw();
  };
})();
