/* The generation loop, one token per step, from a recorded run: the text so far (grey: the
   prompt), the candidates the model proposed at this step and the token chosen (orange).
   data: {vocab, prompt_ids, chosen, top_ids, top_probs, chosen_probs, step}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.generation) return;
  LMC.explorers.generation = function (root, data) {
    var n = data.chosen.length, step = data.step, timer = null;
    var svg = LMC.s("svg", { class: "lmc-candidates" }), text = LMC.h("pre", { class: "lmc-text" }), info = LMC.readout("step_info");
    var slider = LMC.slider("step", { min: 1, max: n, step: 1, value: step + 1, name: "step", format: function (v) { return v + " of " + n; } },
                            function (v) { step = v - 1; draw(); });
    function go(s) { step = Math.max(0, Math.min(n - 1, s)); slider.input.value = step + 1; slider.refresh(); draw(); }
    var play = LMC.button("\u25b6 play", function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; return; }
      if (step === n - 1) go(0);
      play.textContent = "\u275a\u275a pause";
      timer = setInterval(LMC.guard(function () { if (step >= n - 1) { play.click(); } else { go(step + 1); } }), 700);
    }, "play");
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [play, LMC.button("\u25c0 previous", function () { go(step - 1); }, "previous"),
                                                               slider, LMC.button("next \u25b6", function () { go(step + 1); }, "next")]));
    root.appendChild(text);
    root.appendChild(LMC.h("p", {}, [info]));
    root.appendChild(svg);
    function str(ids) { return ids.map(function (i) { return data.vocab[i]; }).join(""); }
    function draw() {
      var chosen = data.chosen[step];
      text.textContent = "";
      text.appendChild(LMC.h("span", { class: "lmc-muted", "data-key": "prompt", text: str(data.prompt_ids) }));
      text.appendChild(LMC.h("span", { "data-key": "generated", text: str(data.chosen.slice(0, step)) }));
      text.appendChild(LMC.h("span", { class: "lmc-hl", "data-key": "chosen", text: data.vocab[chosen] }));
      var ids = data.top_ids[step].slice(), ps = data.top_probs[step].slice();
      if (ids.indexOf(chosen) < 0) { ids.push(chosen); ps.push(data.chosen_probs[step]); }
      LMC.bars(svg, ids.map(function (id, j) {
        return { label: data.vocab[id], value: ps[j], color: id === chosen ? "#d95f02" : "#1f77b4", selected: id === chosen };
      }), { ymax: 1, width: 360, caption: "candidates at step " + (step + 1) + " (orange: chosen)" });
      var rank = data.top_ids[step].indexOf(chosen);
      info.textContent = "step " + (step + 1) + " of " + n + ": the model saw " + (data.prompt_ids.length + step) + " tokens and chose " +
        JSON.stringify(data.vocab[chosen]) + " with p = " + data.chosen_probs[step].toFixed(3) +
        (rank >= 0 ? " (rank " + (rank + 1) + ")" : " (outside the top candidates)") + "; it is appended and fed back in.";
    }
    draw();
  };
})();
