/* Head Wiki: lazy layer-by-head grids on model pages and mosaics.
   A placeholder <div class="hw-lazy" data-grid="model/metric" data-src="../heads/model/grid-metric.js">
   is filled with its grid's SVG when it comes near the screen: the sidecar script (from this site) sets
   HW_GRIDS["model/metric"] to SVG made and escaped by the builder. A script, not fetch: works from file:// too. */
(function () {
  "use strict";
  var boxes = Array.prototype.slice.call(document.querySelectorAll(".hw-lazy[data-src]"));
  if (!boxes.length) return;
  var loading = {};

  function fill(box) {
    var svg = (window.HW_GRIDS || {})[box.getAttribute("data-grid")];
    if (typeof svg !== "string") return false;
    box.innerHTML = svg;
    box.classList.add("hw-loaded");
    box.removeAttribute("data-src");
    return true;
  }

  function load(box) {
    if (!box.hasAttribute("data-src") || fill(box)) return;
    var src = box.getAttribute("data-src");
    if (!loading[src]) {
      loading[src] = [];
      var s = document.createElement("script");
      s.src = src;
      s.onload = function () { loading[src].forEach(fill); };
      s.onerror = function () {
        loading[src].forEach(function (b) { b.textContent = "This grid could not be loaded (" + src + ")."; });
      };
      document.head.appendChild(s);
    }
    loading[src].push(box);
  }

  if (!("IntersectionObserver" in window)) { boxes.forEach(load); return; }
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (e.isIntersecting) { seen.unobserve(e.target); load(e.target); }
    });
  }, { rootMargin: "800px 0px" });
  boxes.forEach(function (b) { seen.observe(b); });
})();
