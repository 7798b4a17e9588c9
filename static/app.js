// Draws the revenue charts (uPlot) from their data-chart attribute, on load and after every htmx swap.
// The y axis is in the currency from zero; the x axis and the tooltip speak the tables' date style;
// a year view is drawn as bars. Styles are set through the CSSOM (allowed by the page's CSP).
(function () {
  "use strict";
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function whole(value) {
    return value.toLocaleString("en-GB", { maximumFractionDigits: 0 });
  }
  function cents(value) {
    return value.toLocaleString("en-GB", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function tick(ts, freq) {
    var d = new Date(ts * 1e3);
    if (freq === "year") return String(d.getUTCFullYear());
    if (freq === "month") return MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear();
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()];
  }

  function tooltipPlugin(data) {
    var tip;
    return {
      hooks: {
        init: function (u) {
          tip = document.createElement("div");
          tip.className = "chart-tip";
          tip.setAttribute("role", "status");
          tip.hidden = true;
          u.over.appendChild(tip);
        },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i == null || u.cursor.left < 0) { tip.hidden = true; return; }
          tip.hidden = false;
          tip.textContent = data.labels[i] + ": " + data.symbol + cents(data.y[i]);
          var left = u.valToPos(data.x[i], "x");
          var top = u.valToPos(data.y[i], "y");
          var width = tip.offsetWidth;
          tip.style.left = Math.min(Math.max(left - width / 2, 0), u.over.clientWidth - width) + "px";
          tip.style.top = Math.max(top - 34, 0) + "px";
        },
      },
    };
  }

  // Two figures per month as stacked bars (new and returning customers): the total's bar is
  // drawn in the upper colour, the lower figure's bar over it from zero.
  var STACK_COLOURS = ["rgba(47, 91, 211, 0.85)", "rgba(245, 165, 36, 0.9)"];
  function stacked(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    el.dataset.drawn = "1";
    var data = JSON.parse(el.dataset.stacked);
    if (!data.x.length) return;
    var low = data.stacks[0], high = data.stacks[1];
    var total = low.map(function (v, i) { return v + high[i]; });
    var fmt = data.symbol ? function (v) { return data.symbol + whole(v); } : whole;
    var bars = uPlot.paths.bars({ size: [0.6, 60] });
    var tip;
    var opts = {
      width: Math.max(el.clientWidth, 280),
      height: 240,
      padding: [12, 32, 0, 0],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { show: false },
      cursor: { y: false, points: { show: false } },
      plugins: [{ hooks: {
        init: function (u) { tip = document.createElement("div"); tip.className = "chart-tip"; tip.hidden = true; u.over.appendChild(tip); },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i == null || u.cursor.left < 0) { tip.hidden = true; return; }
          tip.hidden = false;
          tip.textContent = data.labels[i] + ": " + fmt(low[i]) + " " + data.names[0] + ", " + fmt(high[i]) + " " + data.names[1];
          var width = tip.offsetWidth;
          tip.style.left = Math.min(Math.max(u.valToPos(data.x[i], "x") - width / 2, 0), u.over.clientWidth - width) + "px";
          tip.style.top = Math.max(u.valToPos(total[i], "y") - 34, 0) + "px";
        },
      } }],
      scales: {
        x: { time: true, range: function (u, min, max) { var pad = Math.max((max - min) / (2 * Math.max(data.x.length - 1, 1)), 86400 * 16); return [min - pad, max + pad]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } },
      },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (ts) { return tick(ts, "month"); }); },
          splits: data.x.length <= 14 && el.clientWidth >= 60 * data.x.length ? function () { return data.x; } : undefined },
        { size: data.symbol ? 86 : 60, values: function (u, vals) { return vals.map(fmt); } },
      ],
      series: [{}, { label: data.names[1], fill: STACK_COLOURS[1], stroke: STACK_COLOURS[1], paths: bars, points: { show: false } },
        { label: data.names[0], fill: STACK_COLOURS[0], stroke: STACK_COLOURS[0], paths: bars, points: { show: false } }],
    };
    var chart = new uPlot(opts, [data.x, total, low], el);
    new ResizeObserver(function () { chart.setSize({ width: Math.max(el.clientWidth, 280), height: 240 }); }).observe(el);
  }

  function draw(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    el.dataset.drawn = "1";
    var data = JSON.parse(el.dataset.chart);
    if (!data.x.length) return;
    var bars = data.freq === "year" || data.x.length < 3;
    var partial = data.partial || data.x.map(function () { return false; });
    var n = data.x.length;
    // whole periods solid; a partial first or last period dashed (or pale, as a bar), joined to its neighbour
    var solid = data.y.map(function (v, i) { return partial[i] ? null : v; });
    var part = data.y.map(function (v, i) {
      if (partial[i]) return v;
      var nextToPartial = (i > 0 && partial[i - 1]) || (i < n - 1 && partial[i + 1]);
      return !bars && nextToPartial ? v : null;
    });
    var series = { label: "Revenue", stroke: "#2f5bd3", fill: "rgba(47, 91, 211, 0.12)", width: 2, points: { show: n < 60 } };
    var partSeries = { label: "Partial period", stroke: "#2f5bd3", dash: [6, 5], width: 2, points: { show: n < 60 } };
    if (bars) {
      series.paths = partSeries.paths = uPlot.paths.bars({ size: [0.5, 120] });
      series.fill = "rgba(47, 91, 211, 0.75)";
      partSeries.fill = "rgba(47, 91, 211, 0.3)";
      series.points = partSeries.points = { show: false };
    }
    var opts = {
      width: Math.max(el.clientWidth, 280),
      height: 260,
      padding: [12, 32, 0, 0],  // room for the last period's label
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { show: false },
      cursor: { y: false, points: { show: !bars } },
      plugins: [tooltipPlugin(data)],
      scales: {
        x: bars ? { time: true, range: function (u, min, max) { var pad = Math.max((max - min) / 2, 86400 * 200); return [min - pad, max + pad]; } } : { time: true },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } },
      },
      axes: [
        {
          values: function (u, ticks) { return ticks.map(function (ts) { return tick(ts, data.freq); }); },
          // every month labelled where there is room for it (not on a phone)
          splits: bars || data.freq === "month" && data.x.length <= 14 && el.clientWidth >= 60 * data.x.length ? function () { return data.x; } : undefined,
        },
        { size: 86, values: function (u, vals) { return vals.map(function (v) { return data.symbol + whole(v); }); } },
      ],
      series: [{}, series, partSeries],
    };
    var chart = new uPlot(opts, [data.x, solid, part], el);
    new ResizeObserver(function () { chart.setSize({ width: Math.max(el.clientWidth, 280), height: 260 }); }).observe(el);
  }
  // The Data page's upload: asks before replacing all data (naming how many transactions), then
  // sends the file with a progress bar (bytes sent) and the button disabled; the server's answer
  // (the import's progress page, or the form with its error) replaces the page. Without
  // JavaScript the form posts as it is, and the server makes a second post of it harmless.
  function upload(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    form.addEventListener("submit", function (event) {
      var stored = Number(form.dataset.stored || 0);
      var replace = form.querySelector("#replace");
      if (replace && replace.checked && stored > 0 &&
          !window.confirm("Replace all " + stored.toLocaleString("en-GB") + " stored transactions with this file? This cannot be undone.")) {
        event.preventDefault();
        return;
      }
      if (!window.FormData || !window.XMLHttpRequest) return;
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      var box = form.querySelector(".upload-progress");
      var bar = box.querySelector("progress");
      var note = box.querySelector("p");
      button.disabled = true;
      button.textContent = "Uploading…";
      box.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.max = e.total;
        bar.value = e.loaded;
        note.textContent = (e.loaded / 1e6).toFixed(1) + " of " + (e.total / 1e6).toFixed(1) + " MB sent" +
          (e.loaded >= e.total ? "; the import starts…" : "");
      });
      xhr.addEventListener("load", function () {
        if (xhr.responseURL && xhr.responseURL.indexOf("/data/jobs/") !== -1) {
          window.location.assign(xhr.responseURL);  // the import's own page follows it
          return;
        }
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var main = page.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(main);
          htmx.process(main);
        }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        button.textContent = "Upload and import";
        note.textContent = "The upload did not reach the server (connection lost?): try again.";
      });
      xhr.send(new FormData(form));
    });
  }

  // a filter form's message is about its last request: a new one clears it (an error refills it)
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target.closest && event.target.closest("form");
    var box = form && form.querySelector("#filter-error");
    if (box) box.replaceChildren();
  });

  htmx.onLoad(function (root) {
    Array.from(root.querySelectorAll ? root.querySelectorAll("form#upload") : []).forEach(upload);
    (root.matches && root.matches("[data-chart]") ? [root] : []).concat(Array.from(root.querySelectorAll("[data-chart]"))).forEach(draw);
    (root.matches && root.matches("[data-stacked]") ? [root] : []).concat(Array.from(root.querySelectorAll("[data-stacked]"))).forEach(stacked);
  });
})();
