/* A trained model's causal attention: pick a layer, a head and a query position. Left: the T x T
   weights (row i: what query i looks at; grey: the masked future). Right: the chosen row as bars.
   data: {tokens, weights: [layer][head][i][j], layer, head, query}. */
(function () {
  var LMC = window.LMC;
  if (LMC.explorers.attention) return;
  LMC.explorers.attention = function (root, data) {
    var L = data.weights.length, H = data.weights[0].length, T = data.tokens.length;
    var s = { layer: data.layer, head: data.head, query: data.query };
    var grid = LMC.s("svg", { class: "lmc-grid" }), row = LMC.s("svg", { class: "lmc-row" });
    var info = LMC.readout("row_info");
    var range = function (n) { return Array.apply(null, Array(n)).map(function (_, i) { return [i, String(i)]; }); };
    var controls = LMC.h("div", { class: "lmc-controls" }, [
      LMC.select("layer", range(L), s.layer, function (v) { s.layer = Number(v); draw(); }, "layer"),
      LMC.select("head", range(H), s.head, function (v) { s.head = Number(v); draw(); }, "head"),
      LMC.slider("query position i", { min: 0, max: T - 1, step: 1, value: s.query, name: "query",
                                        format: function (v) { return v + " " + JSON.stringify(data.tokens[v]); } },
                 function (v) { s.query = v; draw(); })]);
    root.appendChild(controls);
    root.appendChild(LMC.h("div", {}, [grid, row]));
    root.appendChild(LMC.h("p", {}, [info]));
    function draw() {
      var W = data.weights[s.layer][s.head], cell = Math.max(8, Math.min(22, Math.floor(330 / T))), pad = 40;
      var size = pad + cell * T + 4;
      grid.textContent = "";
      LMC.set(grid, { viewBox: "0 0 " + size + " " + size, width: size, height: size, role: "img" });
      grid.appendChild(LMC.s("title", {}, "attention weights, layer " + s.layer + ", head " + s.head));
      for (var i = 0; i < T; i++) {
        for (var j = 0; j < T; j++) {
          var future = j > i;
          var r = LMC.s("rect", { class: "lmc-cell", x: pad + j * cell, y: pad + i * cell, width: cell - 1, height: cell - 1,
                                  fill: future ? "#e0e0e0" : LMC.blue(W[i][j]), "data-i": i, "data-j": j,
                                  "data-value": future ? 0 : W[i][j], "data-masked": future ? "true" : "false" });
          r.appendChild(LMC.s("title", {}, future ? "masked (future)" : "weight " + W[i][j].toFixed(3)));
          grid.appendChild(r);
        }
        grid.appendChild(LMC.s("text", { x: pad - 4, y: pad + i * cell + cell * 0.7, "text-anchor": "end", "font-size": Math.min(11, cell),
                                         "font-family": "monospace" }, LMC.tokenLabel(data.tokens[i])));
        grid.appendChild(LMC.s("text", { x: pad + i * cell + cell / 2, y: pad - 6, "text-anchor": "middle", "font-size": Math.min(11, cell),
                                         "font-family": "monospace" }, LMC.tokenLabel(data.tokens[i])));
      }
      grid.appendChild(LMC.s("rect", { x: pad - 1, y: pad + s.query * cell - 1, width: cell * T + 1, height: cell + 1, fill: "none",
                                       stroke: "#d62728", "stroke-width": 2, class: "lmc-query-outline" }));
      LMC.bars(row, data.tokens.map(function (t, j) {
        return { label: t, value: j > s.query ? 0 : W[s.query][j], color: j > s.query ? "#e0e0e0" : "#1f77b4" };
      }), { ymax: 1, width: Math.max(300, 16 * T), valueLabels: T <= 16, caption: "weights of query " + s.query + " over keys 0.." + s.query });
      var best = 0;
      for (var k = 0; k <= s.query; k++) if (W[s.query][k] > W[s.query][best]) best = k;
      info.textContent = "query " + s.query + " (" + JSON.stringify(data.tokens[s.query]) + ") may see keys 0.." + s.query +
        "; it looks most at key " + best + " (" + JSON.stringify(data.tokens[best]) + ", weight " + W[s.query][best].toFixed(3) + ")";
    }
    draw();
  };
})();
