/* Teacher forcing along one sequence: at position t the model sees the true prefix x<=t and is
   scored on the true next token y_t with loss -ln p(y_t). Left: the loss at every position (one
   forward pass computes them all); right: the top candidates at t, the target in orange.
   data: {vocab, inputs, targets, probs, losses, top_ids, top_probs, position}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.teacher_forcing) return;
  LMC.explorers.teacher_forcing = function (root, data) {
    var n = data.targets.length, t = data.position;
    var lossSvg = LMC.s("svg", { class: "lmc-losses" }), candSvg = LMC.s("svg", { class: "lmc-candidates" });
    var text = LMC.h("pre", { class: "lmc-prefix" }), prob = LMC.readout("prob"), loss = LMC.readout("loss"), mean = LMC.readout("mean_loss");
    var slider = LMC.slider("position t", { min: 0, max: n - 1, step: 1, value: t, name: "position" }, function (v) { t = v; draw(); });
    function go(d) { t = Math.max(0, Math.min(n - 1, t + d)); slider.input.value = t; slider.refresh(); draw(); }
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [LMC.button("\u25c0 previous", function () { go(-1); }, "previous"), slider,
                                                               LMC.button("next \u25b6", function () { go(1); }, "next")]));
    root.appendChild(text);
    root.appendChild(LMC.h("p", {}, ["model p(target) = ", prob, ", loss = \u2212ln p = ", loss,
                                     " nats \u00b7 mean loss over all positions = ", mean, " nats"]));
    root.appendChild(LMC.h("div", {}, [lossSvg, candSvg]));
    var avg = data.losses.reduce(function (a, b) { return a + b; }, 0) / n;
    function draw() {
      var prefix = data.inputs.slice(0, t + 1).map(function (i) { return data.vocab[i]; }).join("");
      var target = data.vocab[data.targets[t]];
      text.textContent = "";
      text.appendChild(LMC.h("span", { "data-key": "prefix", text: prefix }));
      text.appendChild(LMC.h("span", { class: "lmc-hl", "data-key": "target", title: "target y_t", text: LMC.tokenLabel(target) }));
      var lmax = Math.max.apply(null, data.losses);
      LMC.bars(lossSvg, data.losses.map(function (l, i) {
        return { label: data.vocab[data.targets[i]], value: l, color: i === t ? "#d95f02" : "#9ecae1", selected: i === t };
      }), { ymax: lmax, width: Math.max(320, 9 * n), valueLabels: false, caption: "loss per position (nats); orange: t = " + t });
      var ids = data.top_ids[t].slice(), ps = data.top_probs[t].slice();
      if (ids.indexOf(data.targets[t]) < 0) { ids.push(data.targets[t]); ps.push(data.probs[t]); }
      LMC.bars(candSvg, ids.map(function (id, j) {
        return { label: data.vocab[id], value: ps[j], color: id === data.targets[t] ? "#d95f02" : "#1f77b4", selected: id === data.targets[t] };
      }), { ymax: 1, width: 320, caption: "the model's top candidates at t (orange: the target)" });
      prob.textContent = data.probs[t].toFixed(4);
      loss.textContent = (-Math.log(data.probs[t])).toFixed(4);
      mean.textContent = avg.toFixed(4);
    }
    draw();
  };
})();
