/* One chat request through the five stages: messages as JSON, the chat template, the prompt's
   token ids, the generated tokens (one at a time) and the reassembled reply.
   data: {stages, stage, request_json, prompt, specials, prompt_ids, prompt_tokens, new_ids,
   new_tokens, reply, finish_reason, response_json}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.pipeline) return;
  LMC.explorers.pipeline = function (root, data) {
    var stage = data.stage, k = data.new_ids.length;
    var panel = LMC.h("div", { class: "lmc-panel" }), title = LMC.h("h4", { "data-key": "stage_title" });
    var slider = LMC.slider("stage", { min: 1, max: data.stages.length, step: 1, value: stage + 1, name: "stage",
                                       format: function (v) { return v + ". " + data.stages[v - 1]; } }, function (v) { stage = v - 1; draw(); });
    var tokSlider = LMC.slider("tokens generated", { min: 0, max: k, step: 1, value: k, name: "n_new" }, function (v) { shown = v; draw(); });
    var shown = k;
    function go(v) { stage = Math.max(0, Math.min(data.stages.length - 1, v)); slider.input.value = stage + 1; slider.refresh(); draw(); }
    root.appendChild(LMC.h("div", { class: "lmc-controls" }, [LMC.button("\u25c0 previous", function () { go(stage - 1); }, "previous"), slider,
                                                               LMC.button("next \u25b6", function () { go(stage + 1); }, "next")]));
    root.appendChild(title);
    root.appendChild(panel);
    function pieces(text) {  // split on the special strings, so each marker is its own piece
      var out = [], rest = text;
      while (rest.length) {
        var at = -1, which = null;
        data.specials.forEach(function (sp) { var i = rest.indexOf(sp); if (i >= 0 && (at < 0 || i < at)) { at = i; which = sp; } });
        if (at < 0) { out.push([rest, false]); break; }
        if (at > 0) out.push([rest.slice(0, at), false]);
        out.push([which, true]);
        rest = rest.slice(at + which.length);
      }
      return out;
    }
    function tokens(ids, strs) {
      return LMC.h("div", { class: "lmc-tokens" }, ids.map(function (id, i) {
        var special = data.specials.indexOf(strs[i]) >= 0;
        return LMC.h("span", { class: "lmc-tok" + (special ? " lmc-special" : ""), "data-id": id },
                     [LMC.tokenLabel(strs[i]), LMC.h("small", { text: String(id) })]);
      }));
    }
    function draw() {
      title.textContent = (stage + 1) + ". " + data.stages[stage];
      panel.textContent = "";
      if (stage === 0) panel.appendChild(LMC.h("pre", { "data-key": "request", text: data.request_json }));
      if (stage === 1) panel.appendChild(LMC.h("pre", { "data-key": "prompt" }, pieces(data.prompt).map(function (p) {
        return p[1] ? LMC.h("span", { class: "lmc-special", text: p[0] }) : p[0];
      })));
      if (stage === 2) {
        panel.appendChild(LMC.h("p", { text: data.prompt_ids.length + " prompt tokens (dark: special markers, one id each)" }));
        panel.appendChild(tokens(data.prompt_ids, data.prompt_tokens));
      }
      if (stage === 3) {
        panel.appendChild(LMC.h("div", { class: "lmc-controls" }, [tokSlider]));
        panel.appendChild(LMC.h("p", { text: shown + " of " + k + " tokens streamed; finish reason: " + (shown === k ? data.finish_reason : "\u2026") }));
        panel.appendChild(tokens(data.new_ids.slice(0, shown), data.new_tokens.slice(0, shown)));
      }
      if (stage === 4) {
        panel.appendChild(LMC.h("p", {}, ["reply: ", LMC.h("b", { "data-key": "reply", text: data.reply })]));
        panel.appendChild(LMC.h("pre", { "data-key": "response", text: data.response_json }));
      }
    }
    draw();
  };
})();
