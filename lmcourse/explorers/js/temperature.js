/* Next-token distribution under a temperature: logits / T (left) and softmax(logits / T) (right)
   for the k most likely tokens; the order never changes with T. data: {vocab, contexts: [{context,
   logits}], k, temperature}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.temperature) return;
  LMC.explorers.temperature = function (root, data) {
    var ctx = 0, T = data.temperature;
    var left = LMC.s("svg", { class: "lmc-logits" }), right = LMC.s("svg", { class: "lmc-probs" });
    var ent = LMC.readout("entropy_bits"), top = LMC.readout("top_prob"), rest = LMC.readout("rest_mass");
    var heading = LMC.h("div", { class: "lmc-muted" });
    var controls = LMC.h("div", { class: "lmc-controls" });
    if (data.contexts.length > 1)
      controls.appendChild(LMC.select("context", data.contexts.map(function (c, i) { return [i, JSON.stringify(c.context)]; }), 0,
                                      function (v) { ctx = Number(v); draw(); }, "context"));
    controls.appendChild(LMC.slider("temperature \u03c4", { min: 0.1, max: 3, step: 0.05, value: T, name: "temperature",
                                     format: LMC.fmt2 }, function (v) { T = v; draw(); }));
    root.appendChild(controls);
    root.appendChild(heading);
    root.appendChild(LMC.h("div", {}, [left, right]));
    root.appendChild(LMC.h("p", {}, ["entropy ", ent, " bits \u00b7 most likely token p = ", top,
                                     " \u00b7 all the other tokens together: ", rest]));
    function draw() {
      var z = data.contexts[ctx].logits, p = LMC.softmax(z, T);
      var order = LMC.argsortDesc(z).slice(0, data.k);
      var zs = order.map(function (i) { return z[i] / T; });
      var zmax = Math.max.apply(null, zs.map(Math.abs));
      heading.textContent = "next token after " + JSON.stringify(data.contexts[ctx].context) + ", \u03c4 = " + T.toFixed(2);
      LMC.bars(left, order.map(function (i, j) {
        return { label: data.vocab[i], value: zs[j], color: zs[j] >= 0 ? "#d95f02" : "#7570b3" };
      }), { ymax: Math.max(zmax, 1e-9), ymin: Math.min(0, Math.min.apply(null, zs)), caption: "logit / \u03c4 (any real number)",
            width: 400 });
      LMC.bars(right, order.map(function (i) { return { label: data.vocab[i], value: p[i] }; }),
               { ymax: 1, caption: "probability = softmax(logit / \u03c4)", width: 400 });
      var shown = order.reduce(function (s, i) { return s + p[i]; }, 0);
      ent.textContent = LMC.entropyBits(p).toFixed(3);
      top.textContent = p[order[0]].toFixed(3);
      rest.textContent = Math.max(0, 1 - shown).toFixed(3);
    }
    draw();
  };
})();
