// Draws the revenue charts (uPlot) from their data-chart attribute, on load and after every htmx swap.
(function () {
  "use strict";
  function money(value) {
    return value.toLocaleString(undefined, { maximumFractionDigits: 0 });
  }
  function draw(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    el.dataset.drawn = "1";
    var data = JSON.parse(el.dataset.chart);
    if (!data.x.length) return;
    var opts = {
      width: Math.max(el.clientWidth, 280),
      height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { show: false },
      cursor: { y: false },
      scales: { x: { time: true } },
      axes: [{}, { size: 86, values: function (u, vals) { return vals.map(money); } }],
      series: [{}, { label: "Revenue", stroke: "#2f5bd3", fill: "rgba(47, 91, 211, 0.12)", width: 2, points: { show: data.x.length < 60 } }],
    };
    var chart = new uPlot(opts, [data.x, data.y], el);
    new ResizeObserver(function () { chart.setSize({ width: Math.max(el.clientWidth, 280), height: 260 }); }).observe(el);
  }
  htmx.onLoad(function (root) {
    (root.matches && root.matches("[data-chart]") ? [root] : []).concat(Array.from(root.querySelectorAll("[data-chart]"))).forEach(draw);
  });
})();
