// Show every <time datetime="…Z"> in the browser's time zone; the UTC text stays on hover.
(function () {
  "use strict";
  function localize(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      var style = node.getAttribute("data-style") || "datetime";
      node.textContent = style === "date"
        ? when.toLocaleDateString(document.documentElement.lang || undefined, { year: "numeric", month: "short", day: "numeric" })
        : when.toLocaleString(document.documentElement.lang || undefined, {
            year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
          });
      node.setAttribute("data-local", "");
    }
  }
  window.paywireLocalizeTimes = localize;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { localize(); });
  else localize();
})();
